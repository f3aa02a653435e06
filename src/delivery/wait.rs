//! Waits a worker that is stopping cuts short.

use std::time::Duration;

use tokio::sync::watch;

/// Wait `delay`, unless `stop` turns true first; `false` means stop.
pub(super) async fn pause(delay: Duration, stop: Option<&watch::Receiver<bool>>) -> bool {
    let Some(stop) = stop else {
        tokio::time::sleep(delay).await;
        return true;
    };
    if *stop.borrow() {
        return false;
    }
    let mut stop = stop.clone();
    tokio::select! {
        _ = tokio::time::sleep(delay) => !*stop.borrow(),
        _ = stopped(&mut stop) => false,
    }
}

/// Resolves once `stop` is true; never if its sender is gone without saying so.
pub(super) async fn stopped(stop: &mut watch::Receiver<bool>) {
    if stop.wait_for(|s| *s).await.is_err() {
        std::future::pending::<()>().await;
    }
}
