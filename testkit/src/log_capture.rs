//! The operator's log output when it runs in-process (the process-wide tracing subscriber),
//! captured so a test can check that no credential or Secret value ever reaches it.

use std::sync::{Arc, Mutex};

#[derive(Clone, Default)]
pub struct LogCapture(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for LogCapture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.lock().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl LogCapture {
    /// Install the capture as the process's tracing subscriber. The first call in a test
    /// process wins (a subscriber cannot be replaced), so a test binary installs it in the
    /// one test that reads it.
    pub fn install() -> Self {
        let capture = LogCapture::default();
        let writer = capture.clone();
        // Debug level, so the provider request lines and error paths are included.
        let _ = tracing_subscriber::fmt()
            .with_env_filter("debug,hyper=info,h2=info,tower=info,rustls=info")
            .with_writer(move || writer.clone())
            .try_init();
        capture
    }

    /// Everything logged so far.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.lock()).into_owned()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<u8>> {
        // Nothing panics while holding it; a poisoned buffer still holds the log.
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}
