//! The whole CPU path on loopback: eight simulated cameras stream openh264-encoded video at
//! once into the real ingest server and pipeline (openh264 decode, ONNX Runtime with the tiny
//! test model, post-processing). Every result that comes back must equal what the same model
//! computes offline from the same decoded frame, and every frame sent is accounted for: a
//! result at its camera, or a drop the pipeline counted.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use common::video::{
    CLASS_MAP_WIDTH, HEIGHT, RunningWorker, WIDTH, encode_clip, engine_options, model,
};
use common::{MediaSender, ReplyReader, handshake};
use flowcloud_worker::decode::openh264::OpenH264Decoder;
use flowcloud_worker::decode::{DecodeOutcome, Decoder, DecoderConfig};
use flowcloud_worker::engine::onnxruntime::OnnxRuntimeEngine;
use flowcloud_worker::engine::{Engine, InputBatch};
use flowcloud_worker::frame::I420Frame;
use flowcloud_worker::ingest::server::IngestConfig;
use flowcloud_worker::post;
use flowcloud_worker::preprocess::{PreprocessParams, Preprocessor};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const CAMERAS: u32 = 8;
const FRAMES: u32 = 24;
const KEYFRAME_INTERVAL: u32 = 12;

/// What the model gives offline for each access unit: (histogram, class map at `w`×`h`).
struct Offline {
    engine: OnnxRuntimeEngine,
    preprocessor: Preprocessor,
}

impl Offline {
    fn new() -> Self {
        let engine = OnnxRuntimeEngine::load(&model(), &engine_options()).unwrap();
        let preprocessor = Preprocessor::new(PreprocessParams::from(engine.manifest()));
        Self {
            engine,
            preprocessor,
        }
    }

    fn results(&mut self, clip: &[Vec<u8>], map: (u16, u16)) -> Vec<(Vec<u32>, Vec<u8>)> {
        self.full_results(clip, map)
            .into_iter()
            .map(|(h, small, _)| (h, small))
            .collect()
    }

    /// Histogram, downscaled class map, and full-resolution class map per access unit.
    fn full_results(
        &mut self,
        clip: &[Vec<u8>],
        map: (u16, u16),
    ) -> Vec<(Vec<u32>, Vec<u8>, Vec<u8>)> {
        let mut decoder = OpenH264Decoder::new(DecoderConfig::default());
        let mut frame = I420Frame::filled(0, 0, (0, 0, 0));
        let manifest = self.engine.manifest().clone();
        let classes = manifest.num_classes();
        let mut input = vec![0f32; PreprocessParams::from(&manifest).output_len()];
        let mut logits = Vec::new();
        clip.iter()
            .map(|au| {
                assert_eq!(
                    decoder.decode(au, &mut frame).unwrap(),
                    DecodeOutcome::Frame
                );
                self.preprocessor.run_frame(&frame, &mut input).unwrap();
                let shape = self
                    .engine
                    .infer(&InputBatch::for_manifest(&manifest, 1, &input), &mut logits)
                    .unwrap();
                let mut class_map = vec![0u8; WIDTH * HEIGHT];
                post::upsample_argmax(
                    &logits,
                    shape.classes,
                    shape.height,
                    shape.width,
                    HEIGHT,
                    WIDTH,
                    &mut class_map,
                )
                .unwrap();
                let mut histogram = vec![0u32; classes];
                post::histogram(&class_map, classes, &mut histogram).unwrap();
                let (w, h) = (usize::from(map.0), usize::from(map.1));
                let mut small = vec![0u8; w * h];
                post::downscale_nearest(&class_map, WIDTH, HEIGHT, w, h, &mut small).unwrap();
                (histogram, small, class_map)
            })
            .collect()
    }
}

async fn camera(addr: std::net::SocketAddr, index: u32, clip: Arc<Vec<Vec<u8>>>) -> ReplyReader {
    let mut socket = TcpStream::connect(addr).await.unwrap();
    let ssrc = 0x5000 + index;
    socket
        .write_all(&handshake(ssrc, &format!("camera-{index}")))
        .await
        .unwrap();
    let mut sender = MediaSender::new(ssrc);
    let (mut reader_half, mut writer_half) = socket.into_split();
    let send = tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_millis(40));
        for (n, au) in clip.iter().enumerate() {
            tick.tick().await;
            writer_half
                .write_all(&sender.frame(au, n as u32 * 3000))
                .await
                .unwrap();
        }
        writer_half
    });
    let mut reader = ReplyReader::new();
    let mut buf = vec![0u8; 65536];
    let deadline = Instant::now() + Duration::from_secs(60);
    // Read until every frame has a result, or results stop coming for a while.
    while reader.replies.results.len() < FRAMES as usize && Instant::now() < deadline {
        match tokio::time::timeout(Duration::from_secs(5), reader_half.read(&mut buf)).await {
            Ok(Ok(n)) if n > 0 => reader.push(&buf[..n]),
            _ => break,
        }
    }
    drop(send.await.unwrap());
    reader
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eight_cameras_get_results_equal_to_the_offline_model() {
    let clips: Vec<Arc<Vec<Vec<u8>>>> = (0..CAMERAS)
        .map(|c| Arc::new(encode_clip(c, FRAMES, KEYFRAME_INTERVAL)))
        .collect();

    let worker = RunningWorker::start(IngestConfig::default()).await;
    let addr = worker.addr;

    let cameras: Vec<_> = clips
        .iter()
        .enumerate()
        .map(|(i, clip)| tokio::spawn(camera(addr, i as u32, Arc::clone(clip))))
        .collect();
    let mut replies = Vec::new();
    for camera in cameras {
        replies.push(camera.await.unwrap().replies);
    }
    let pipeline = Arc::clone(&worker.pipeline);
    worker.stop().await;

    let mut offline = Offline::new();
    let mut received = 0u64;
    for (i, (replies, clip)) in replies.iter().zip(&clips).enumerate() {
        assert_eq!(
            replies.results.len(),
            replies.class_maps.len(),
            "camera {i}: every result carries a map"
        );
        let Some(&(_, w, h, _)) = replies.class_maps.first() else {
            panic!("camera {i} received no result");
        };
        assert_eq!((w, h), (CLASS_MAP_WIDTH, 30), "40 wide, aspect ratio kept");
        let expected = offline.results(clip, (w, h));
        let maps: HashMap<u32, &Vec<u8>> = replies
            .class_maps
            .iter()
            .map(|(ts, _, _, m)| (*ts, m))
            .collect();
        for (ts, histogram) in &replies.results {
            let n = (ts / 3000) as usize;
            assert_eq!(ts % 3000, 0);
            assert_eq!(histogram, &expected[n].0, "camera {i} frame {n}: histogram");
            assert_eq!(maps[ts], &expected[n].1, "camera {i} frame {n}: class map");
            assert_eq!(
                histogram.iter().map(|&c| u64::from(c)).sum::<u64>(),
                (WIDTH * HEIGHT) as u64
            );
        }
        received += replies.results.len() as u64;
    }

    let c = pipeline.counters();
    let sent = u64::from(CAMERAS * FRAMES);
    let dropped = c.dropped_decode_queue.load(Ordering::Relaxed)
        + c.dropped_waiting_for_keyframe.load(Ordering::Relaxed)
        + c.decode_errors.load(Ordering::Relaxed)
        + c.dropped_batch_queue.load(Ordering::Relaxed)
        + c.dropped_results.load(Ordering::Relaxed)
        + c.failed_batches.load(Ordering::Relaxed);
    eprintln!("sent {sent}, results {received}, dropped {dropped}: {c:?}");
    assert_eq!(
        c.received.load(Ordering::Relaxed),
        sent,
        "every access unit reached the pipeline"
    );
    assert_eq!(
        received + dropped,
        sent,
        "every frame has a result or a counted drop"
    );
    assert!(
        received >= sent * 9 / 10,
        "a paced clean run loses at most 10%: {received}/{sent}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn results_are_stored_as_cityscapes_pngs_and_counted_in_metrics() {
    use flowcloud_worker::metrics::Metrics;
    use flowcloud_worker::pipeline::{PipelineExtras, ResultStorage};
    use flowcloud_worker::storage::{LabelFormat, ResultStore, StorageConfig};

    let root = std::env::temp_dir().join(format!("flowcloud-store-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    let store = ResultStore::new(
        root.clone(),
        StorageConfig {
            class_maps: Some(LabelFormat::TrainIds),
            overlays: true,
            max_files_per_stream: 5,
            frame_hashes: false,
        },
    )
    .unwrap();
    let metrics = Arc::new(Metrics::new());
    let extras = PipelineExtras {
        metrics: Some(Arc::clone(&metrics)),
        storage: Some(ResultStorage {
            store,
            overlay_alpha: 0.5,
        }),
        stages: None,
    };
    let worker = RunningWorker::start_with(IngestConfig::default(), extras).await;
    let clip = Arc::new(encode_clip(3, FRAMES, KEYFRAME_INTERVAL));
    // Stream the clip and read every result, staying connected: per-stream series go with
    // the connection.
    let mut socket = TcpStream::connect(worker.addr).await.unwrap();
    socket
        .write_all(&handshake(0x5000, "camera-0"))
        .await
        .unwrap();
    let mut sender = MediaSender::new(0x5000);
    for (n, au) in clip.iter().enumerate() {
        socket
            .write_all(&sender.frame(au, n as u32 * 3000))
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let mut reader = ReplyReader::new();
    let mut buf = vec![0u8; 65536];
    while reader.replies.results.len() < FRAMES as usize {
        let n = tokio::time::timeout(Duration::from_secs(10), socket.read(&mut buf))
            .await
            .unwrap()
            .unwrap();
        assert!(n > 0);
        reader.push(&buf[..n]);
    }
    // The inference thread counts a result just after sending it: the last count may lag the
    // last result by a moment.
    let returned =
        format!("flowcloud_frames_total{{stream=\"camera-0\",stage=\"returned\"}} {FRAMES}");
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    let mut text = metrics.encode();
    while !text.contains(&returned) && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
        text = metrics.encode();
    }
    assert!(text.contains(&returned), "{text}");
    assert!(
        text.contains("flowcloud_stage_seconds_count{stage=\"infer\"}"),
        "{text}"
    );
    let replies = reader.replies;
    drop(socket);
    worker.stop().await;
    assert_eq!(replies.results.len(), FRAMES as usize);

    // Retention keeps the last five frames: class map and overlay each.
    let dir = root.join("camera-0");
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    let maps: Vec<&String> = names
        .iter()
        .filter(|n| n.ends_with("_gtFine_trainIds.png"))
        .collect();
    let overlays = names.iter().filter(|n| n.ends_with("_overlay.png")).count();
    assert_eq!((maps.len(), overlays), (5, 5), "{names:?}");

    // The newest stored class map is the offline model's, pixel for pixel.
    let last = FRAMES - 1;
    assert_eq!(
        maps[4],
        &format!("{:08}_{}_gtFine_trainIds.png", last, last * 3000)
    );
    let decoder = png::Decoder::new(std::io::BufReader::new(
        std::fs::File::open(dir.join(maps[4])).unwrap(),
    ));
    let mut reader = decoder.read_info().unwrap();
    let mut pixels = vec![0u8; reader.output_buffer_size().unwrap()];
    let info = reader.next_frame(&mut pixels).unwrap();
    assert_eq!((info.width as usize, info.height as usize), (WIDTH, HEIGHT));
    let expected = Offline::new().full_results(&clip, (CLASS_MAP_WIDTH, 30));
    assert_eq!(&pixels[..WIDTH * HEIGHT], &expected[last as usize].2[..]);

    assert!(
        !metrics.encode().contains("camera-0"),
        "a closed stream's series are removed"
    );
    let _ = std::fs::remove_dir_all(&root);
}
