//! Receiver URLs and the SSRF guard shared by the API and the delivery client.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

pub const MAX_URL_LEN: usize = 2048;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UrlError {
    #[error("url is not a valid absolute URL: {0}")]
    Malformed(String),
    #[error("url must use http or https, not {0}")]
    Scheme(String),
    #[error("url is longer than {MAX_URL_LEN} characters")]
    TooLong,
    #[error("url has no host")]
    NoHost,
    #[error("url must not carry credentials")]
    Credentials,
    #[error("url host {0} does not resolve")]
    Unresolvable(String),
    #[error("url host {host} resolves to {ip}, a non-public address (loopback, private, link-local, reserved or multicast)")]
    NonPublic { host: String, ip: IpAddr },
}

/// An absolute `http`/`https` URL of at most 2048 characters, with a host.
#[derive(Clone, PartialEq, Eq)]
pub struct WebhookUrl(url::Url);

/// Redacted as in logs, so a `Target` or error printed for debugging never shows a
/// token the URL carries.
impl std::fmt::Debug for WebhookUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("WebhookUrl").field(&self.redacted()).finish()
    }
}

impl WebhookUrl {
    pub fn parse(s: &str) -> Result<Self, UrlError> {
        if s.len() > MAX_URL_LEN {
            return Err(UrlError::TooLong);
        }
        let url = url::Url::parse(s).map_err(|e| UrlError::Malformed(e.to_string()))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(UrlError::Scheme(url.scheme().to_owned()));
        }
        if url.host().is_none() {
            return Err(UrlError::NoHost);
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(UrlError::Credentials);
        }
        Ok(Self(url))
    }

    pub fn as_url(&self) -> &url::Url {
        &self.0
    }

    pub fn as_str(&self) -> &str {
        self.0.as_str()
    }

    pub fn is_https(&self) -> bool {
        self.0.scheme() == "https"
    }

    /// The host as written (IPv6 without brackets), for logs and TLS server names.
    pub fn host(&self) -> String {
        match self.0.host() {
            Some(url::Host::Ipv6(ip)) => ip.to_string(),
            Some(h) => h.to_string(),
            None => String::new(),
        }
    }

    pub fn port(&self) -> u16 {
        self.0.port_or_known_default().unwrap_or(80)
    }

    /// The URL as a log line may show it: scheme, host and port only. Chat webhooks
    /// (Slack, Discord, Teams) carry their token in the path or query.
    pub fn redacted(&self) -> String {
        let origin = self.0.origin().ascii_serialization();
        if self.0.path() == "/" && self.0.query().is_none() {
            origin
        } else {
            format!("{origin}/…")
        }
    }

    /// Resolve the host and check every address; returns the addresses to connect to.
    /// Every address must pass, so a name with one private answer is refused whole.
    pub async fn resolve_checked(&self, allow_private: bool) -> Result<Vec<SocketAddr>, UrlError> {
        let port = self.port();
        let addrs: Vec<SocketAddr> = match self.0.host() {
            Some(url::Host::Ipv4(ip)) => vec![SocketAddr::new(IpAddr::V4(ip), port)],
            Some(url::Host::Ipv6(ip)) => vec![SocketAddr::new(IpAddr::V6(ip), port)],
            Some(url::Host::Domain(name)) => tokio::net::lookup_host((name, port))
                .await
                .map_err(|_| UrlError::Unresolvable(name.to_owned()))?
                .collect(),
            None => return Err(UrlError::NoHost),
        };
        if addrs.is_empty() {
            return Err(UrlError::Unresolvable(self.host()));
        }
        if !allow_private {
            if let Some(bad) = addrs.iter().find(|a| !is_public(a.ip())) {
                return Err(UrlError::NonPublic {
                    host: self.host(),
                    ip: bad.ip(),
                });
            }
        }
        Ok(addrs)
    }
}

/// Whether an address is a public unicast destination.
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_public_v4(v4),
        IpAddr::V6(v6) => is_public_v6(v6),
    }
}

fn is_public_v4(ip: Ipv4Addr) -> bool {
    let [a, b, c, _] = ip.octets();
    let blocked = ip.is_unspecified()
        || ip.is_loopback()
        || ip.is_private()
        || ip.is_link_local()
        || ip.is_multicast()
        || ip.is_broadcast()
        || ip.is_documentation()
        || a == 0 // "this network"
        || a >= 240 // reserved
        || (a == 100 && (64..128).contains(&b)) // shared address space (CGNAT)
        || (a == 192 && b == 0 && c == 0) // IETF protocol assignments
        || (a == 192 && b == 88 && c == 99) // 6to4 relay anycast: forwards into IPv6
        || (a == 198 && (b == 18 || b == 19)); // benchmarking
    !blocked
}

fn is_public_v6(ip: Ipv6Addr) -> bool {
    if let Some(v4) = ip.to_ipv4_mapped() {
        return is_public_v4(v4);
    }
    let seg = ip.segments();
    // IPv4-compatible (::a.b.c.d) and NAT64 (64:ff9b::/96) embed an IPv4 address.
    if seg[..6] == [0, 0, 0, 0, 0, 0] && !(ip.is_unspecified() || ip.is_loopback()) {
        let [a, b] = seg[6].to_be_bytes();
        let [c, d] = seg[7].to_be_bytes();
        return is_public_v4(Ipv4Addr::new(a, b, c, d));
    }
    if seg[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
        let [a, b] = seg[6].to_be_bytes();
        let [c, d] = seg[7].to_be_bytes();
        return is_public_v4(Ipv4Addr::new(a, b, c, d));
    }
    // 6to4 (2002::/16) carries its IPv4 gateway in bits 16–47.
    if seg[0] == 0x2002 {
        let [a, b] = seg[1].to_be_bytes();
        let [c, d] = seg[2].to_be_bytes();
        return is_public_v4(Ipv4Addr::new(a, b, c, d));
    }
    let blocked = ip.is_unspecified()
        // Translators whose target a local operator chooses: local-use NAT64
        // (64:ff9b:1::/48), Teredo (2001::/32, the client address obfuscated) and
        // IPv4-translated addresses (::ffff:0:a.b.c.d).
        || seg[..3] == [0x64, 0xff9b, 1]
        || seg[..2] == [0x2001, 0]
        || seg[..6] == [0, 0, 0, 0, 0xffff, 0]
        || ip.is_loopback()
        || ip.is_multicast()
        || (seg[0] & 0xfe00) == 0xfc00 // unique local
        || (seg[0] & 0xffc0) == 0xfe80 // link-local
        || (seg[0] & 0xffc0) == 0xfec0 // site-local (deprecated)
        || (seg[0] == 0x2001 && seg[1] == 0x0db8) // documentation
        || (seg[0] == 0x0100 && seg[1..4] == [0, 0, 0]); // discard-only
    !blocked
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_redacted_url_keeps_no_path_or_query() {
        let redacted = |s: &str| WebhookUrl::parse(s).unwrap().redacted();
        assert_eq!(
            redacted("https://discord.com/api/webhooks/1/s3cr3t-token?wait=true"),
            "https://discord.com/…"
        );
        assert_eq!(
            redacted("https://prod.logic.azure.com:8443/workflows/x/triggers?sig=s3cr3t#f"),
            "https://prod.logic.azure.com:8443/…"
        );
        assert_eq!(redacted("http://[2001:db8::1]/"), "http://[2001:db8::1]");
        let url = WebhookUrl::parse("https://hooks.slack.com/services/T0/B0/s3cr3t").unwrap();
        assert!(!format!("{url:?}").contains("s3cr3t"), "{url:?}");
    }

    #[test]
    fn parses_only_http_and_https() {
        assert!(WebhookUrl::parse("https://example.com/hook").is_ok());
        assert!(WebhookUrl::parse("http://1.1.1.1:8080/x?y=1").is_ok());
        assert_eq!(
            WebhookUrl::parse("ftp://example.com/").unwrap_err(),
            UrlError::Scheme("ftp".into())
        );
        assert!(matches!(
            WebhookUrl::parse("not a url"),
            Err(UrlError::Malformed(_))
        ));
        assert_eq!(
            WebhookUrl::parse(&format!("https://a.com/{}", "x".repeat(2048))).unwrap_err(),
            UrlError::TooLong
        );
        assert_eq!(
            WebhookUrl::parse("https://u:p@example.com/").unwrap_err(),
            UrlError::Credentials
        );
    }

    #[test]
    fn classifies_addresses() {
        for ip in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "0.0.0.0",
            "224.0.0.1",
            "255.255.255.255",
            "240.0.0.1",
            "100.64.0.1",
            "192.0.2.1",
            "198.18.0.1",
            "::1",
            "::",
            "fe80::1",
            "fc00::1",
            "ff02::1",
            "::ffff:127.0.0.1",
            "::ffff:169.254.169.254",
            "::ffff:10.0.0.1",
            "64:ff9b::a00:1",
            "::127.0.0.1",
            "2001:db8::1",
            "192.88.99.1",
            "64:ff9b:1::a00:1",
            "64:ff9b:1:ffff::808:808",
            "2002:7f00:1::1",
            "2002:a00:1::",
            "2002:c0a8:101:1::1",
            "2001::1",
            "2001:0:4136:e378:8000:63bf:3fff:fdd2",
            "::ffff:0:7f00:1",
            "::ffff:0:808:808",
        ] {
            assert!(!is_public(ip.parse().unwrap()), "{ip} must be blocked");
        }
        for ip in [
            "1.1.1.1",
            "8.8.8.8",
            "2606:4700:4700::1111",
            "::ffff:1.1.1.1",
            "2002:808:808::1",
            "2001:4860:4860::8888",
            "192.88.98.1",
        ] {
            assert!(is_public(ip.parse().unwrap()), "{ip} must pass");
        }
    }

    #[actix_rt::test]
    async fn guard_checks_literals_and_names() {
        let mapped = WebhookUrl::parse("http://[::ffff:127.0.0.1]/").unwrap();
        assert!(matches!(
            mapped.resolve_checked(false).await,
            Err(UrlError::NonPublic { .. })
        ));
        let local = WebhookUrl::parse("http://localhost:9/").unwrap();
        assert!(matches!(
            local.resolve_checked(false).await,
            Err(UrlError::NonPublic { .. })
        ));
        assert!(local.resolve_checked(true).await.is_ok());
        let public = WebhookUrl::parse("https://1.1.1.1/hook").unwrap();
        assert_eq!(
            public.resolve_checked(false).await.unwrap(),
            vec!["1.1.1.1:443".parse().unwrap()]
        );
        let nowhere = WebhookUrl::parse("https://no-such-host.invalid/").unwrap();
        assert!(matches!(
            nowhere.resolve_checked(false).await,
            Err(UrlError::Unresolvable(_))
        ));
    }
}
