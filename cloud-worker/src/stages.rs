//! Where preprocessing and post-processing run: on the CPU, or with FlowCloud's CUDA kernels on
//! the GPU that decodes (`decode.gpu`). Chosen once at start from `kernels.backend` and the
//! capability probe; `auto` falls back to the CPU and says why.

use std::sync::Arc;

use clap::ValueEnum;
use flowcloud_cuda::{Capabilities, GpuContext};
use serde::{Deserialize, Serialize};

use crate::post::cuda::CudaPost;
use crate::post::{CpuPost, Post};
use crate::preprocess::cuda::CudaPreprocessor;
use crate::preprocess::{CpuPreprocess, Preprocess, PreprocessParams};

/// `[kernels] backend`: where preprocessing and post-processing run.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum KernelBackend {
    /// The CUDA kernels when the probe at start finds them usable on the GPU, else the CPU.
    #[default]
    Auto,
    /// The CPU, without trying the GPU.
    Cpu,
    /// The CUDA kernels; the worker is not ready when they cannot be used.
    Cuda,
}

impl KernelBackend {
    /// The name as written in the config file and on the command line.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Auto => "auto",
            Self::Cpu => "cpu",
            Self::Cuda => "cuda",
        }
    }
}

/// The preprocessing and post-processing backends the inference thread runs.
pub struct Stages {
    /// Picture → the model's input.
    pub preprocess: Box<dyn Preprocess>,
    /// Logits → class map and histogram.
    pub post: Box<dyn Post>,
}

impl std::fmt::Debug for Stages {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Stages")
            .field("preprocess", &self.preprocess.backend())
            .field("post", &self.post.backend())
            .finish()
    }
}

impl Stages {
    /// Both on the CPU, for a model's input.
    #[must_use]
    pub fn cpu(params: PreprocessParams) -> Self {
        Self {
            preprocess: Box::new(CpuPreprocess::new(params)),
            post: Box::new(CpuPost),
        }
    }

    /// Both with the CUDA kernels on `gpu`: the kernels are loaded (compiled, where no
    /// prebuilt PTX serves) now, so a GPU that cannot run them is found at start.
    ///
    /// # Errors
    ///
    /// Why the kernels cannot be used there.
    pub fn cuda(gpu: &Arc<GpuContext>, params: PreprocessParams) -> Result<Self, String> {
        let preprocess = CudaPreprocessor::new(Arc::clone(gpu), params)
            .map_err(|e| format!("preprocessing kernel: {e}"))?;
        let post = CudaPost::new(Arc::clone(gpu)).map_err(|e| format!("argmax kernel: {e}"))?;
        Ok(Self {
            preprocess: Box::new(preprocess),
            post: Box::new(post),
        })
    }
}

/// `kernels.backend = "cuda"` on a machine where the CUDA kernels cannot be used.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("kernels.backend is \"cuda\", but the CUDA kernels cannot be used on GPU {gpu}: {reason}")]
pub struct CudaRequired {
    /// The configured GPU.
    pub gpu: usize,
    /// Why not.
    pub reason: String,
}

/// The stage backends chosen at start.
#[derive(Debug)]
pub struct StageSelection {
    /// What the inference thread runs.
    pub stages: Stages,
    /// The GPU the kernels run on, when they do: NVDEC decoders on it hand their pictures on
    /// in CUDA memory ([`crate::decode::DecoderSelection::with_device_output`]).
    pub gpu: Option<Arc<GpuContext>>,
    /// Why the CUDA kernels are not used, when `auto` considered them.
    pub cuda_unavailable: Option<String>,
}

impl StageSelection {
    /// Chooses for `asked`: the CPU as asked; for `auto` and `cuda`, the kernels when
    /// `capabilities` say GPU `gpu` can run them and they load there.
    ///
    /// # Errors
    ///
    /// [`CudaRequired`] when `asked` is `cuda` and they cannot be used; `auto` falls back to
    /// the CPU instead and says why ([`Self::cuda_unavailable`](StageSelection)).
    pub fn choose(
        asked: KernelBackend,
        gpu: usize,
        params: PreprocessParams,
        capabilities: &Capabilities,
    ) -> Result<Self, CudaRequired> {
        if asked == KernelBackend::Cpu {
            return Ok(Self::on_cpu(params, None));
        }
        match cuda_on(gpu, params, capabilities) {
            Ok((context, stages)) => Ok(Self {
                stages,
                gpu: Some(context),
                cuda_unavailable: None,
            }),
            Err(reason) if asked == KernelBackend::Auto => Ok(Self::on_cpu(params, Some(reason))),
            Err(reason) => Err(CudaRequired { gpu, reason }),
        }
    }

    fn on_cpu(params: PreprocessParams, why: Option<String>) -> Self {
        Self {
            stages: Stages::cpu(params),
            gpu: None,
            cuda_unavailable: why,
        }
    }

    /// `"cuda"` or `"cpu"`.
    #[must_use]
    pub const fn backend(&self) -> &'static str {
        match self.gpu {
            Some(_) => KernelBackend::Cuda.as_str(),
            None => KernelBackend::Cpu.as_str(),
        }
    }
}

fn cuda_on(
    gpu: usize,
    params: PreprocessParams,
    capabilities: &Capabilities,
) -> Result<(Arc<GpuContext>, Stages), String> {
    if let Some(why) = capabilities.kernels_unavailable(gpu) {
        return Err(why);
    }
    let context = Arc::new(GpuContext::new(gpu).map_err(|e| e.to_string())?);
    let stages = Stages::cuda(&context, params)?;
    Ok((context, stages))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::ChannelOrder;

    fn params() -> PreprocessParams {
        PreprocessParams {
            out_width: 16,
            out_height: 8,
            mean: [0.5; 3],
            std: [0.25; 3],
            channel_order: ChannelOrder::Rgb,
        }
    }

    #[test]
    fn cpu_is_chosen_without_trying_the_gpu() {
        let chosen =
            StageSelection::choose(KernelBackend::Cpu, 0, params(), &Capabilities::probe())
                .unwrap();
        assert_eq!(chosen.backend(), "cpu");
        assert_eq!(chosen.stages.preprocess.backend(), "cpu");
        assert_eq!(chosen.stages.post.backend(), "cpu");
        assert!(chosen.gpu.is_none());
        assert_eq!(chosen.cuda_unavailable, None);
    }

    #[test]
    fn auto_and_cuda_follow_what_the_probe_finds() {
        let capabilities = Capabilities::probe();
        let auto = StageSelection::choose(KernelBackend::Auto, 0, params(), &capabilities).unwrap();
        let cuda = StageSelection::choose(KernelBackend::Cuda, 0, params(), &capabilities);
        match capabilities.kernels_unavailable(0) {
            // No usable GPU here: auto says why and runs on the CPU; cuda refuses with the same
            // reason.
            Some(why) => {
                assert_eq!(auto.backend(), "cpu");
                assert_eq!(auto.cuda_unavailable.as_deref(), Some(why.as_str()));
                let refused = cuda.unwrap_err();
                assert_eq!(refused.reason, why);
                assert!(
                    refused.to_string().starts_with(
                        "kernels.backend is \"cuda\", but the CUDA kernels cannot be used on GPU 0: "
                    ),
                    "{refused}"
                );
            }
            // A GPU that can run them: both run the kernels.
            None => {
                assert_eq!(auto.backend(), "cuda", "{:?}", auto.cuda_unavailable);
                assert_eq!(auto.stages.preprocess.backend(), "cuda");
                assert_eq!(auto.stages.post.backend(), "cuda");
                assert_eq!(cuda.unwrap().backend(), "cuda");
            }
        }
    }

    #[test]
    fn a_gpu_the_driver_does_not_have_is_refused_by_name() {
        let capabilities = Capabilities::probe();
        let missing = capabilities.devices.len() + 7;
        let refused = StageSelection::choose(KernelBackend::Cuda, missing, params(), &capabilities)
            .unwrap_err();
        assert_eq!(refused.gpu, missing);
        let auto =
            StageSelection::choose(KernelBackend::Auto, missing, params(), &capabilities).unwrap();
        assert_eq!(auto.backend(), "cpu");
        assert!(auto.cuda_unavailable.is_some());
    }
}
