//! Settings, read once where the binary starts and passed down explicitly.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use switchboard_domain::crypto::{Envelope, Secret};

/// Everything `serve` needs from the environment.
#[derive(Clone, Debug)]
pub struct Settings {
    pub database_url: String,
    pub redis_url: Option<String>,
    pub listen: SocketAddr,
    pub public_url: String,
    /// Platform-admin bearer token; the admin API is disabled without one.
    pub admin_token: Option<Secret>,
    pub allow_private_networks: bool,
    /// Comma-separated CIDRs and host names outbound calls may reach despite the policy.
    pub outbound_allowlist: String,
    pub data_dir: PathBuf,
    /// A prefix for every Redis key, so deployments (and tests) can share one Redis.
    pub redis_prefix: String,
    /// How long a request may take before it is answered 503 `request_timeout`.
    pub request_timeout: std::time::Duration,
    /// How long the gateway waits for an upstream MCP server's answer to begin.
    pub gateway_upstream_timeout: std::time::Duration,
    /// The longest a streamed answer to one gateway request may last in all.
    pub gateway_call_timeout: std::time::Duration,
    /// Browser origins the gateway serves besides the public URL's own.
    pub gateway_allowed_origins: Vec<String>,
}

impl Settings {
    /// Settings for tests and embedding: SQLite in `data_dir`, loopback, no admin token.
    #[must_use]
    pub fn for_data_dir(data_dir: &Path) -> Self {
        Self {
            database_url: format!("sqlite://{}?mode=rwc", data_dir.join("switchboard.db").display()),
            redis_url: None,
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            public_url: "http://localhost:8080".into(),
            admin_token: None,
            allow_private_networks: false,
            outbound_allowlist: String::new(),
            data_dir: data_dir.to_path_buf(),
            redis_prefix: "switchboard".into(),
            request_timeout: std::time::Duration::from_secs(30),
            gateway_upstream_timeout: std::time::Duration::from_secs(25),
            gateway_call_timeout: std::time::Duration::from_secs(600),
            gateway_allowed_origins: vec![],
        }
    }

    #[must_use]
    pub fn policy(&self) -> switchboard_domain::validate::Policy {
        switchboard_domain::validate::Policy { allow_private_networks: self.allow_private_networks }
    }
}

/// Loads the master key: `SWITCHBOARD_MASTER_KEY` when given, else `<data_dir>/master.key`,
/// created with mode 0600 on first use.
pub fn load_master_key(from_env: Option<&str>, data_dir: &Path) -> anyhow::Result<Envelope> {
    if let Some(text) = from_env.filter(|t| !t.trim().is_empty()) {
        return Envelope::from_base64(text).context("SWITCHBOARD_MASTER_KEY is invalid (expected 32 bytes in standard base64, e.g. from `openssl rand -base64 32`)");
    }
    let path = data_dir.join("master.key");
    match std::fs::read_to_string(&path) {
        Ok(text) => {
            warn_if_readable_by_others(&path);
            Envelope::from_base64(&text).with_context(|| format!("{} is not a valid master key", path.display()))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let key = Envelope::generate_base64().context("generating a master key")?;
            write_private(&path, key.as_bytes())?;
            tracing::info!(path = %path.display(), "generated a new master key; back it up: without it stored secrets cannot be read");
            Envelope::from_base64(&key).context("reading the generated master key")
        }
        Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
    }
}

/// Writes a new file readable only by its owner; fails if the file exists.
pub fn write_private(path: &Path, contents: &[u8]) -> anyhow::Result<()> {
    use std::io::Write as _;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        opts.mode(0o600);
    }
    let mut file = opts.open(path).with_context(|| format!("creating {}", path.display()))?;
    file.write_all(contents).with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}

fn warn_if_readable_by_others(path: &Path) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        if let Ok(meta) = std::fs::metadata(path)
            && meta.permissions().mode() & 0o077 != 0
        {
            tracing::warn!(path = %path.display(), "the master key file is readable by other users; run `chmod 600` on it");
        }
    }
}
