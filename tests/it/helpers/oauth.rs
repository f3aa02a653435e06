//! An OAuth2 token endpoint and the receiver it protects, in one local server:
//! `POST /token` issues `tok-<n>` (client credentials grant) and counts requests;
//! `POST /hook` accepts only a token it issued that is unexpired and not revoked,
//! and answers 401 to anything else.

use std::{
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use actix_web::{web, HttpRequest, HttpResponse};
use bytes::Bytes;

/// What `/token` answers.
#[derive(Clone, Debug)]
pub enum TokenReply {
    /// A token valid this long (`expires_in`), after waiting `delay`.
    Grant { lifetime: Duration, delay: Duration },
    /// An error answer `{"error": code}` with this status.
    Error(u16, &'static str),
}

/// A request to `/token`.
#[derive(Clone, Debug)]
pub struct TokenRequest {
    pub authorization: Option<String>,
    pub form: String,
}

/// A request to `/hook`.
#[derive(Clone, Debug)]
pub struct HookRequest {
    pub authorization: Option<String>,
    pub status: u16,
    pub event_id: Option<String>,
    pub body: Bytes,
}

struct Issued {
    token: String,
    expires: Instant,
    revoked: bool,
}

struct State {
    reply: TokenReply,
    issued: Vec<Issued>,
    token_requests: Vec<TokenRequest>,
    hooks: Vec<HookRequest>,
}

pub struct OAuthServer {
    pub port: u16,
    state: Arc<Mutex<State>>,
    handle: actix_web::dev::ServerHandle,
}

impl OAuthServer {
    pub fn start(reply: TokenReply) -> Self {
        let state = Arc::new(Mutex::new(State {
            reply,
            issued: Vec::new(),
            token_requests: Vec::new(),
            hooks: Vec::new(),
        }));
        let s = state.clone();
        let (port, handle) = super::http::serve_on_thread(
            "token server",
            move |cfg| {
                cfg.app_data(web::Data::new(s.clone()))
                    .route("/token", web::post().to(token))
                    .route("/hook", web::post().to(hook));
            },
            None,
        );
        Self {
            port,
            state,
            handle,
        }
    }

    pub fn token_url(&self) -> String {
        format!("http://127.0.0.1:{}/token", self.port)
    }

    pub fn hook_url(&self) -> String {
        format!("http://127.0.0.1:{}/hook", self.port)
    }

    pub fn set_reply(&self, reply: TokenReply) {
        self.state.lock().unwrap().reply = reply;
    }

    /// Every token issued so far is refused from now on.
    pub fn revoke_all(&self) {
        for issued in &mut self.state.lock().unwrap().issued {
            issued.revoked = true;
        }
    }

    /// Whether token `n` (1-based) has expired by the server's clock.
    pub fn expired(&self, n: usize) -> bool {
        self.state
            .lock()
            .unwrap()
            .issued
            .get(n - 1)
            .is_some_and(|i| Instant::now() >= i.expires)
    }

    pub fn token_requests(&self) -> Vec<TokenRequest> {
        self.state.lock().unwrap().token_requests.clone()
    }

    pub fn hooks(&self) -> Vec<HookRequest> {
        self.state.lock().unwrap().hooks.clone()
    }

    /// Deliveries the receiver accepted.
    pub fn accepted(&self) -> Vec<HookRequest> {
        self.hooks()
            .into_iter()
            .filter(|h| h.status == 200)
            .collect()
    }
}

impl Drop for OAuthServer {
    fn drop(&mut self) {
        let handle = self.handle.clone();
        std::thread::spawn(move || {
            actix_rt::System::new().block_on(handle.stop(false));
        });
    }
}

fn authorization(req: &HttpRequest) -> Option<String> {
    req.headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

async fn token(req: HttpRequest, body: Bytes, state: web::Data<Arc<Mutex<State>>>) -> HttpResponse {
    let reply = {
        let mut s = state.lock().unwrap();
        s.token_requests.push(TokenRequest {
            authorization: authorization(&req),
            form: String::from_utf8_lossy(&body).into_owned(),
        });
        s.reply.clone()
    };
    match reply {
        TokenReply::Grant { lifetime, delay } => {
            if !delay.is_zero() {
                actix_rt::time::sleep(delay).await;
            }
            let mut s = state.lock().unwrap();
            let token = format!("tok-{}", s.issued.len() + 1);
            s.issued.push(Issued {
                token: token.clone(),
                expires: Instant::now() + lifetime,
                revoked: false,
            });
            HttpResponse::Ok().json(serde_json::json!({
                "access_token": token,
                "token_type": "Bearer",
                "expires_in": lifetime.as_secs(),
            }))
        }
        TokenReply::Error(status, code) => {
            HttpResponse::build(actix_web::http::StatusCode::from_u16(status).unwrap())
                .json(serde_json::json!({"error": code}))
        }
    }
}

async fn hook(req: HttpRequest, body: Bytes, state: web::Data<Arc<Mutex<State>>>) -> HttpResponse {
    let auth = authorization(&req);
    let mut s = state.lock().unwrap();
    let now = Instant::now();
    let valid = auth
        .as_deref()
        .and_then(|a| a.strip_prefix("Bearer "))
        .is_some_and(|t| {
            s.issued
                .iter()
                .any(|i| i.token == t && !i.revoked && now < i.expires)
        });
    let status = if valid { 200 } else { 401 };
    s.hooks.push(HookRequest {
        authorization: auth,
        status,
        event_id: req
            .headers()
            .get("x-decnet-event-id")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned),
        body,
    });
    if valid {
        HttpResponse::Ok().finish()
    } else {
        HttpResponse::Unauthorized().finish()
    }
}
