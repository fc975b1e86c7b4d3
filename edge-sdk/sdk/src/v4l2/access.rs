//! How a [`Device`](super::Device) reaches its driver: raw system calls, or the five entry
//! points of `libv4l2.so.0` loaded at run time.
//!
//! JetPack 5's encoder node (`/dev/nvhost-msenc`) answers only through NVIDIA's libv4l2 plugin
//! (`libv4l2_nvvideocodec.so`, loaded by NVIDIA's `libv4l2.so.0`), so applications must call
//! `v4l2_open`/`v4l2_ioctl`/`v4l2_mmap`/`v4l2_munmap`/`v4l2_close` instead of `open`/`ioctl`/
//! `mmap`. For ordinary drivers the stock libv4l2 passes every call through to the kernel, which
//! is how the same path is tested against `vicodec`.
//!
//! The library is loaded with `libloading`, never linked: a build or a test on a machine
//! without it works, and opening a device through it there is a typed [`Libv4l2Error`].

use core::ffi::{CStr, c_char, c_int, c_ulong, c_void};
use core::num::NonZeroUsize;
use core::ptr::NonNull;
use std::ffi::CString;
use std::sync::Arc;

use nix::errno::Errno;
use nix::libc;
use nix::sys::mman::{MapFlags, ProtFlags};

use super::bindings::ioctl::Request;

/// The soname applications link against, on Debian and in L4T alike.
pub const LIBV4L2: &str = "libv4l2.so.0";

/// Which way a device is opened, for configuration: resolved to an [`Access`] at open time.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum AccessKind {
    /// Raw `open`/`ioctl`/`mmap` (every kernel V4L2 driver, JetPack 6's `/dev/v4l2-nvenc`).
    #[default]
    Kernel,
    /// Through `libv4l2.so.0` (JetPack 5's `/dev/nvhost-msenc`).
    Libv4l2,
}

impl AccessKind {
    /// `"kernel"` or `"libv4l2"`, as [`AccessKind::parse`] reads them.
    #[must_use]
    pub const fn name(self) -> &'static str {
        match self {
            Self::Kernel => "kernel",
            Self::Libv4l2 => "libv4l2",
        }
    }

    /// Reads `"kernel"` or `"libv4l2"`.
    #[must_use]
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "kernel" => Some(Self::Kernel),
            "libv4l2" => Some(Self::Libv4l2),
            _ => None,
        }
    }

    /// The [`Access`] for this kind: loads `libv4l2.so.0` for [`AccessKind::Libv4l2`].
    pub fn resolve(self) -> Result<Access, Libv4l2Error> {
        match self {
            Self::Kernel => Ok(Access::Kernel),
            Self::Libv4l2 => Ok(Access::Libv4l2(Arc::new(Libv4l2::load()?))),
        }
    }
}

impl core::fmt::Display for AccessKind {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(self.name())
    }
}

/// `libv4l2.so.0` could not be used.
#[derive(Debug, thiserror::Error)]
pub enum Libv4l2Error {
    /// The library did not load (not installed, or not on the loader's path).
    #[error(
        "{library} could not be loaded ({reason}); on Debian/Ubuntu it is the package libv4l-0, on a Jetson part of L4T (nvidia-l4t-multimedia)"
    )]
    NotFound {
        /// The name that was loaded.
        library: String,
        /// What the dynamic loader said.
        reason: String,
    },
    /// The library loaded but lacks an entry point.
    #[error("{library} has no symbol {symbol} ({reason})")]
    MissingSymbol {
        /// The library.
        library: String,
        /// The entry point.
        symbol: &'static str,
        /// What the dynamic loader said.
        reason: String,
    },
}

type OpenFn = unsafe extern "C" fn(*const c_char, c_int, ...) -> c_int;
type CloseFn = unsafe extern "C" fn(c_int) -> c_int;
type IoctlFn = unsafe extern "C" fn(c_int, c_ulong, ...) -> c_int;
type MmapFn = unsafe extern "C" fn(*mut c_void, usize, c_int, c_int, c_int, i64) -> *mut c_void;
type MunmapFn = unsafe extern "C" fn(*mut c_void, usize) -> c_int;

/// `libv4l2.so.0`, loaded, with the entry points the SDK uses.
pub struct Libv4l2 {
    name: String,
    open: OpenFn,
    close: CloseFn,
    ioctl: IoctlFn,
    mmap: MmapFn,
    munmap: MunmapFn,
    // Last: the function pointers above are valid only while the library stays loaded.
    _library: libloading::Library,
}

impl core::fmt::Debug for Libv4l2 {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Libv4l2")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl Libv4l2 {
    /// Loads [`LIBV4L2`] from the loader's search path.
    pub fn load() -> Result<Self, Libv4l2Error> {
        Self::load_from(LIBV4L2)
    }

    /// Loads a libv4l2 by file name or path.
    pub fn load_from(name: &str) -> Result<Self, Libv4l2Error> {
        // SAFETY: loading runs the library's initializers; libv4l2's only set up its own state
        // (its plugin search happens per open, not at load).
        let library =
            unsafe { libloading::Library::new(name) }.map_err(|e| Libv4l2Error::NotFound {
                library: name.to_owned(),
                reason: e.to_string(),
            })?;
        /// Reads one entry point as the C prototype from `libv4l2.h`.
        fn symbol<T: Copy>(
            library: &libloading::Library,
            name: &str,
            symbol: &'static str,
        ) -> Result<T, Libv4l2Error> {
            // SAFETY: `T` is the prototype `libv4l2.h` declares for `symbol` (the callers below
            // pair each name with its type); the pointer is used only while `library` is kept.
            unsafe { library.get::<T>(symbol.as_bytes()) }
                .map(|s| *s)
                .map_err(|e| Libv4l2Error::MissingSymbol {
                    library: name.to_owned(),
                    symbol,
                    reason: e.to_string(),
                })
        }
        Ok(Self {
            open: symbol::<OpenFn>(&library, name, "v4l2_open")?,
            close: symbol::<CloseFn>(&library, name, "v4l2_close")?,
            ioctl: symbol::<IoctlFn>(&library, name, "v4l2_ioctl")?,
            mmap: symbol::<MmapFn>(&library, name, "v4l2_mmap")?,
            munmap: symbol::<MunmapFn>(&library, name, "v4l2_munmap")?,
            name: name.to_owned(),
            _library: library,
        })
    }

    /// The name it was loaded by.
    #[must_use]
    pub fn name(&self) -> &str {
        &self.name
    }
}

/// The way one open device reaches its driver; every system call of a
/// [`Device`](super::Device) and of its buffer mappings goes through it.
///
/// Two accesses are equal when they are of the same kind and, for libv4l2, share one loaded
/// library.
#[derive(Clone, Debug, Default)]
pub enum Access {
    /// Raw system calls.
    #[default]
    Kernel,
    /// `libv4l2.so.0`'s `v4l2_*` functions.
    Libv4l2(Arc<Libv4l2>),
}

impl PartialEq for Access {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (Self::Kernel, Self::Kernel) => true,
            (Self::Libv4l2(a), Self::Libv4l2(b)) => Arc::ptr_eq(a, b),
            _ => false,
        }
    }
}

impl Eq for Access {}

impl Access {
    /// Which kind this is.
    #[must_use]
    pub const fn kind(&self) -> AccessKind {
        match self {
            Self::Kernel => AccessKind::Kernel,
            Self::Libv4l2(_) => AccessKind::Libv4l2,
        }
    }

    /// `open(path, flags)`; returns the new fd or the errno.
    pub(crate) fn open(&self, path: &CStr, flags: c_int) -> Result<c_int, Errno> {
        let fd = match self {
            // SAFETY: `path` is NUL-terminated; no mode is needed without O_CREAT.
            Self::Kernel => unsafe { libc::open(path.as_ptr(), flags) },
            // SAFETY: as above; `v4l2_open` reads its variadic mode only with O_CREAT.
            Self::Libv4l2(lib) => unsafe { (lib.open)(path.as_ptr(), flags) },
        };
        Errno::result(fd)
    }

    /// Closes an fd this access opened.
    ///
    /// # Safety
    ///
    /// `fd` was returned by [`Access::open`] of the same kind and is not used afterwards.
    pub(crate) unsafe fn close(&self, fd: c_int) -> Result<(), Errno> {
        let rc = match self {
            // SAFETY: the caller owns `fd` and gives it up.
            Self::Kernel => unsafe { libc::close(fd) },
            // SAFETY: as above; libv4l2 forgets its state for the fd and closes it.
            Self::Libv4l2(lib) => unsafe { (lib.close)(fd) },
        };
        Errno::result(rc).map(drop)
    }

    /// One ioctl, not retried: `request` fixes the argument's type, so the kernel (or libv4l2)
    /// reads and writes a `T` through `arg`.
    ///
    /// # Safety
    ///
    /// `fd` is open, and every pointer inside `*arg` is valid for what the driver reads and
    /// writes through it for this request.
    pub(crate) unsafe fn ioctl<T>(
        &self,
        fd: c_int,
        request: Request<T>,
        arg: *mut T,
    ) -> Result<c_int, Errno> {
        let rc = match self {
            // SAFETY: the caller's contract; `request.code()` was built from `T`'s size.
            Self::Kernel => unsafe { libc::ioctl(fd, request.code(), arg) },
            // SAFETY: as above. libv4l2 declares the request `unsigned long`, which the code is
            // on every glibc target (nix's `ioctl_num_type`).
            Self::Libv4l2(lib) => unsafe { (lib.ioctl)(fd, request.code() as c_ulong, arg) },
        };
        Errno::result(rc)
    }

    /// A shared read-write mapping of `len` bytes of `fd` at `offset` (a buffer plane's
    /// `mem_offset`).
    ///
    /// # Safety
    ///
    /// `fd` is open; the returned mapping aliases no Rust memory and must be released with
    /// [`Access::munmap`] of the same access.
    pub(crate) unsafe fn mmap(
        &self,
        fd: c_int,
        len: NonZeroUsize,
        offset: u32,
    ) -> Result<NonNull<c_void>, Errno> {
        let prot = (ProtFlags::PROT_READ | ProtFlags::PROT_WRITE).bits();
        let kernel_offset = libc::off_t::from(offset);
        let flags = MapFlags::MAP_SHARED.bits();
        let ptr = match self {
            // SAFETY: a fresh mapping chosen by the kernel (no address hint).
            Self::Kernel => unsafe {
                libc::mmap(
                    core::ptr::null_mut(),
                    len.get(),
                    prot,
                    flags,
                    fd,
                    kernel_offset,
                )
            },
            // SAFETY: as above, through libv4l2 (which maps the driver's buffer or its own).
            Self::Libv4l2(lib) => unsafe {
                (lib.mmap)(
                    core::ptr::null_mut(),
                    len.get(),
                    prot,
                    flags,
                    fd,
                    i64::from(offset),
                )
            },
        };
        if ptr == libc::MAP_FAILED {
            return Err(Errno::last());
        }
        NonNull::new(ptr).ok_or(Errno::EINVAL)
    }

    /// Releases a mapping made by [`Access::mmap`].
    ///
    /// # Safety
    ///
    /// `ptr` and `len` are exactly what `mmap` of this access returned and was asked for, and
    /// nothing borrows the mapping any more.
    pub(crate) unsafe fn munmap(&self, ptr: NonNull<c_void>, len: usize) -> Result<(), Errno> {
        let rc = match self {
            // SAFETY: the caller's contract.
            Self::Kernel => unsafe { libc::munmap(ptr.as_ptr(), len) },
            // SAFETY: the caller's contract.
            Self::Libv4l2(lib) => unsafe { (lib.munmap)(ptr.as_ptr(), len) },
        };
        Errno::result(rc).map(drop)
    }
}

/// A path as a C string, for `open`.
pub(crate) fn c_path(path: &std::path::Path) -> Result<CString, Errno> {
    use std::os::unix::ffi::OsStrExt;
    CString::new(path.as_os_str().as_bytes()).map_err(|_| Errno::EINVAL)
}

#[cfg(test)]
mod tests {
    use std::io::Write;
    use std::os::fd::AsRawFd;

    use super::*;
    use crate::v4l2::bindings::ioctl;
    use crate::v4l2::device::empty_capability;
    use crate::v4l2::{Device, ioctls_reach_the_kernel};

    /// The system's libv4l2, or `None` (with a SKIP line past libtest's capture) where it is not
    /// installed: the aarch64 test run under qemu-user, a machine without libv4l-0.
    fn system_libv4l2(test: &str) -> Option<Arc<Libv4l2>> {
        match Libv4l2::load() {
            Ok(lib) => Some(Arc::new(lib)),
            Err(e) => {
                let _ = writeln!(std::io::stderr(), "SKIP {test}: {e}");
                None
            }
        }
    }

    #[test]
    fn libv4l2_passes_ioctls_on_other_fds_through_with_their_errno() {
        let test = "libv4l2_passes_ioctls_on_other_fds_through_with_their_errno";
        let Some(lib) = system_libv4l2(test) else {
            return;
        };
        if !ioctls_reach_the_kernel(test) {
            return;
        }
        // libv4l2 knows only fds it opened; any other goes straight to the kernel, which says
        // ENOTTY for QUERYCAP on /dev/null, through both paths alike.
        let file = std::fs::File::open("/dev/null").unwrap();
        for access in [Access::Kernel, Access::Libv4l2(lib)] {
            let mut cap = empty_capability();
            // SAFETY: the fd is open; `v4l2_capability` holds no pointers.
            let result =
                unsafe { access.ioctl(file.as_raw_fd(), ioctl::VIDIOC_QUERYCAP, &mut cap) };
            assert_eq!(result, Err(Errno::ENOTTY), "{:?}", access.kind());
        }
    }

    #[test]
    fn libv4l2_maps_and_unmaps_shared_memory() {
        let Some(lib) = system_libv4l2("libv4l2_maps_and_unmaps_shared_memory") else {
            return;
        };
        let path = std::env::temp_dir().join(format!("flowcloud-libv4l2-{}", std::process::id()));
        let mut file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&path)
            .unwrap();
        let page = 4096;
        let mut contents = vec![0u8; 2 * page];
        contents[page..page + 5].copy_from_slice(b"plane");
        file.write_all(&contents).unwrap();
        std::fs::remove_file(&path).unwrap();
        for access in [Access::Kernel, Access::Libv4l2(lib)] {
            let len = NonZeroUsize::new(page).unwrap();
            // SAFETY: the fd is open; the mapping is released below and read only in between.
            let ptr = unsafe { access.mmap(file.as_raw_fd(), len, page as u32) }.unwrap();
            // SAFETY: a live mapping of `page` bytes.
            let bytes = unsafe { core::slice::from_raw_parts(ptr.as_ptr().cast::<u8>(), 5) };
            assert_eq!(bytes, b"plane", "{:?}", access.kind());
            // SAFETY: what mmap returned, with its length; `bytes` is not used after.
            unsafe { access.munmap(ptr, page) }.unwrap();
        }
    }

    #[test]
    fn devices_open_through_libv4l2_with_the_same_errors() {
        let Some(lib) = system_libv4l2("devices_open_through_libv4l2_with_the_same_errors") else {
            return;
        };
        let missing = "/dev/flowcloud-no-such-video-device";
        let error = Device::open_with(missing, Access::Libv4l2(Arc::clone(&lib)))
            .expect_err("the node does not exist");
        assert_eq!((error.call, error.errno), ("open", Errno::ENOENT));
        if !ioctls_reach_the_kernel("devices_open_through_libv4l2_with_the_same_errors") {
            return;
        }
        // libv4l2 asks QUERYCAP in v4l2_open, so a file that is not a V4L2 node fails to open
        // (with ENOTTY) rather than at the first ioctl.
        let error = Device::open_with("/dev/null", Access::Libv4l2(lib))
            .expect_err("/dev/null is not a V4L2 device");
        assert_eq!((error.call, error.errno), ("open", Errno::ENOTTY));
    }

    #[test]
    fn a_missing_library_is_a_typed_error_that_names_it() {
        let error =
            Libv4l2::load_from("libflowcloud-no-such-libv4l2.so.0").expect_err("no such library");
        match &error {
            Libv4l2Error::NotFound { library, reason } => {
                assert_eq!(library, "libflowcloud-no-such-libv4l2.so.0");
                assert!(!reason.is_empty());
            }
            other => panic!("{other:?}"),
        }
        assert!(
            error
                .to_string()
                .starts_with("libflowcloud-no-such-libv4l2.so.0 could not be loaded"),
            "{error}"
        );
        assert!(error.to_string().contains("libv4l-0"), "{error}");
    }

    #[test]
    fn a_library_without_the_entry_points_is_a_missing_symbol_error() {
        // libc is always loaded and has no v4l2_open.
        match Libv4l2::load_from("libc.so.6") {
            Err(Libv4l2Error::MissingSymbol { symbol, .. }) => assert_eq!(symbol, "v4l2_open"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn access_kinds_read_and_print_their_names() {
        for kind in [AccessKind::Kernel, AccessKind::Libv4l2] {
            assert_eq!(AccessKind::parse(kind.name()), Some(kind));
            assert_eq!(kind.to_string(), kind.name());
        }
        assert_eq!(AccessKind::parse("raw"), None);
        assert_eq!(AccessKind::default(), AccessKind::Kernel);
        assert_eq!(Access::default().kind(), AccessKind::Kernel);
    }
}
