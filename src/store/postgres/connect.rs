//! Reaching the database: the store URL (its TLS, its `sslrootcert`, its place as errors name
//! it, without the password) and the driver's errors sorted into those that pass (the
//! database did not answer) and the others.

use crate::store::StoreError;

/// An error of the driver or the pool, with the server's own message when it sent one
/// (tokio-postgres says only "db error" at the top of the chain).
pub(super) fn pg_error(e: impl std::error::Error + 'static) -> StoreError {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        if let Some(db) = s.downcast_ref::<tokio_postgres::error::DbError>() {
            out = format!("{}: {}", db.severity(), db.message());
            if let Some(d) = db.detail() {
                out.push_str(&format!(" ({d})"));
            }
            break;
        }
        let text = s.to_string();
        if !out.contains(&text) {
            out = format!("{out}: {text}");
        }
        source = s.source();
    }
    if let Some(db) = (&e as &dyn std::error::Error)
        .downcast_ref::<tokio_postgres::Error>()
        .and_then(|e| e.as_db_error())
    {
        out = format!("{}: {}", db.severity(), db.message());
    }
    if unreachable(&e) {
        StoreError::Unavailable(out)
    } else {
        StoreError::Postgres(out)
    }
}

/// Whether an error says the database did not answer (refused, closed, timed out, shutting
/// down, out of connections), which passes, rather than refused the work (bad SQL, wrong
/// credentials, no such database), which does not.
pub(super) fn unreachable(e: &(dyn std::error::Error + 'static)) -> bool {
    if let Some(p) = e.downcast_ref::<deadpool_postgres::PoolError>() {
        return match p {
            deadpool_postgres::PoolError::Timeout(_) => true,
            deadpool_postgres::PoolError::Backend(e) => unreachable(e),
            _ => false,
        };
    }
    let Some(pg) = e.downcast_ref::<tokio_postgres::Error>() else {
        return false;
    };
    if let Some(db) = pg.as_db_error() {
        let code = db.code().code();
        // 08: connection exceptions; 57P01–03: shutting down or starting; 53300: too many
        // connections.
        return code.starts_with("08") || matches!(code, "57P01" | "57P02" | "57P03" | "53300");
    }
    if pg.is_closed() {
        return true;
    }
    // Connecting and talking to the server fail with an I/O error beneath.
    let mut source = std::error::Error::source(pg);
    while let Some(s) = source {
        if s.is::<std::io::Error>() {
            return true;
        }
        source = s.source();
    }
    pg.to_string().contains("timeout")
}

/// How long connecting may take before the database counts as unavailable (unless the URL
/// sets `connect_timeout`).
pub(super) const CONNECT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// A store URL without its password, for errors and logs.
pub(crate) fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let user = &url[scheme + 3..at];
            let user = user.split(':').next().unwrap_or("");
            format!("{}{user}@{}", &url[..scheme + 3], &url[at + 1..])
        }
        _ => url.to_string(),
    }
}

/// Takes `sslrootcert=PATH` out of a store URL (the driver does not read it): the URL
/// without it, and the path.
pub(super) fn take_root_cert(url: &str) -> (String, Option<String>) {
    let Some((base, query)) = url.split_once('?') else {
        return (url.to_string(), None);
    };
    let mut root = None;
    let kept: Vec<&str> = query
        .split('&')
        .filter(|kv| match kv.strip_prefix("sslrootcert=") {
            Some(path) => {
                root = Some(
                    percent_encoding::percent_decode_str(path)
                        .decode_utf8_lossy()
                        .into_owned(),
                );
                false
            }
            None => true,
        })
        .collect();
    let url = if kept.is_empty() {
        base.to_string()
    } else {
        format!("{base}?{}", kept.join("&"))
    };
    (url, root)
}

/// The TLS a store URL asks for: none unless `sslmode=require`; then TLS that checks the
/// server's certificate and name against the public roots and, when given, the
/// certificates in `sslrootcert` (a private CA, a cloud provider's bundle).
pub(super) fn tls_for(
    config: &tokio_postgres::Config,
    root_cert: Option<&str>,
) -> std::result::Result<Option<tokio_postgres_rustls::MakeRustlsConnect>, String> {
    use tokio_rustls::rustls;
    if config.get_ssl_mode() != tokio_postgres::config::SslMode::Require {
        return match root_cert {
            Some(_) => Err("sslrootcert is read with sslmode=require only".into()),
            None => Ok(None),
        };
    }
    let mut roots = rustls::RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    if let Some(path) = root_cert {
        use rustls::pki_types::pem::PemObject;
        let certs = rustls::pki_types::CertificateDer::pem_file_iter(path)
            .map_err(|e| format!("sslrootcert {path}: {e}"))?;
        for cert in certs {
            let cert = cert.map_err(|e| format!("sslrootcert {path}: {e}"))?;
            roots
                .add(cert)
                .map_err(|e| format!("sslrootcert {path}: {e}"))?;
        }
    }
    let tls = rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| e.to_string())?
    .with_root_certificates(roots)
    .with_no_client_auth();
    Ok(Some(tokio_postgres_rustls::MakeRustlsConnect::new(tls)))
}

/// A database's place as errors name it: `host:port/name`, without user or password.
pub(super) fn location_of(config: &tokio_postgres::Config) -> String {
    let host = config
        .get_hosts()
        .first()
        .map(|h| match h {
            tokio_postgres::config::Host::Tcp(h) => h.clone(),
            tokio_postgres::config::Host::Unix(p) => p.display().to_string(),
        })
        .unwrap_or_else(|| "localhost".into());
    let port = config.get_ports().first().copied().unwrap_or(5432);
    let db = config
        .get_dbname()
        .or(config.get_user())
        .unwrap_or("postgres");
    format!("{host}:{port}/{db}")
}
