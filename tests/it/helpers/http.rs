//! A test's HTTP servers (receivers, fakes of security tools, a token endpoint): each
//! on a loopback port, on a thread and actix system of its own.

use std::any::Any;

use actix_web::{
    dev::{Extensions, ServerHandle},
    web, App, HttpServer,
};

/// What a server notes about each connection (see `HttpServer::on_connect`).
pub type OnConnect = fn(&dyn Any, &mut Extensions);

/// Serve what `configure` sets up on 127.0.0.1 (a free port); its port and handle.
/// `what` names it in a failure.
pub fn serve_on_thread(
    what: &'static str,
    configure: impl Fn(&mut web::ServiceConfig) + Send + Clone + 'static,
    on_connect: Option<OnConnect>,
) -> (u16, ServerHandle) {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        actix_rt::System::new().block_on(async move {
            let mut server = HttpServer::new(move || App::new().configure(configure.clone()));
            if let Some(on_connect) = on_connect {
                server = server.on_connect(on_connect);
            }
            let server = server
                .workers(1)
                .disable_signals()
                .shutdown_timeout(0)
                .bind(("127.0.0.1", 0))
                .unwrap_or_else(|e| panic!("{what} binds: {e}"));
            let port = server.addrs()[0].port();
            let server = server.run();
            tx.send((port, server.handle())).expect("report port");
            let _ = server.await;
        });
    });
    rx.recv().unwrap_or_else(|_| panic!("{what} started"))
}
