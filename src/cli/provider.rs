//! `cpid provider register`, `register`, `update`, `withdraw`: a provider's
//! signed calls to its node's HTTP API.

use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand};

use cpid::ident::identifier::Identifier;

use super::load_key;

/// Where the HTTP API is and which key signs.
#[derive(Args, Clone)]
pub(crate) struct ApiOpts {
    /// Signing key (PKCS#8 PEM, as `cpid key generate` writes).
    #[arg(long, short = 'k')]
    pub(crate) key: PathBuf,
    /// The node's HTTP API.
    #[arg(long, default_value = "http://127.0.0.1:8053")]
    pub(crate) server: String,
    /// Print the signed record as JSON.
    #[arg(long)]
    pub(crate) json: bool,
}

/// Values from the command line or a JSON file.
#[derive(Args, Clone)]
pub(crate) struct ValueOpts {
    /// A value as TYPE=DATA (repeatable), e.g. --value CP.ENDPOINT=https://pool.example/v1
    #[arg(long = "value", value_name = "TYPE=DATA")]
    values: Vec<String>,
    /// A JSON file: an array of {"type", "data", "ttl"?, "index"?} or an object with "values".
    #[arg(long, conflicts_with = "values")]
    file: Option<PathBuf>,
}

impl ValueOpts {
    fn load(&self) -> Result<serde_json::Value> {
        if let Some(path) = &self.file {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading {}", path.display()))?;
            let v: serde_json::Value = serde_json::from_str(&text)
                .with_context(|| format!("{} is not JSON", path.display()))?;
            return Ok(match v {
                serde_json::Value::Object(mut o) => o
                    .remove("values")
                    .with_context(|| format!("{} has no \"values\"", path.display()))?,
                other => other,
            });
        }
        if self.values.is_empty() {
            bail!("give at least one --value TYPE=DATA or --file");
        }
        let mut out = Vec::new();
        for v in &self.values {
            let (kind, data) = v
                .split_once('=')
                .with_context(|| format!("--value {v:?} is not TYPE=DATA"))?;
            out.push(serde_json::json!({ "type": kind, "data": data }));
        }
        Ok(serde_json::Value::Array(out))
    }
}

#[derive(Subcommand)]
pub(crate) enum ProviderCommand {
    /// Register a provider signed by its own key; prints the PV identifier.
    Register {
        #[command(flatten)]
        api: ApiOpts,
        /// Provider name.
        #[arg(long)]
        name: String,
        /// Organisation code (e.g. the unified social credit code).
        #[arg(long)]
        organisation: String,
        /// Contact e-mail address.
        #[arg(long)]
        contact: String,
        /// GB/T 2260 province code, e.g. 31 (Shanghai).
        #[arg(long)]
        region: String,
    },
}

pub(crate) fn provider(command: ProviderCommand) -> Result<()> {
    let ProviderCommand::Register {
        api,
        name,
        organisation,
        contact,
        region,
    } = command;
    let key = load_key(&api.key)?;
    let body = serde_json::json!({
        "name": name,
        "organisation": organisation,
        "contact": contact,
        "region": region,
        "public_key": key.public().to_public_pem(),
    });
    api_call(&api, "POST", "/v1/providers", Some(&body))
}

pub(crate) fn register(api: &ApiOpts, class: &str, values: &ValueOpts) -> Result<()> {
    let body = serde_json::json!({ "class": class, "values": values.load()? });
    api_call(api, "POST", "/v1/identifiers", Some(&body))
}

pub(crate) fn update(id: &str, api: &ApiOpts, values: &ValueOpts) -> Result<()> {
    let id = Identifier::parse(id)?;
    let body = serde_json::json!({ "values": values.load()? });
    api_call(api, "PUT", &format!("/v1/identifiers/{id}"), Some(&body))
}

pub(crate) fn withdraw(id: &str, api: &ApiOpts) -> Result<()> {
    let id = Identifier::parse(id)?;
    api_call(api, "DELETE", &format!("/v1/identifiers/{id}"), None)
}

/// Sends one signed request; prints the identifier (or the record with
/// `--json`), or the node's error and a non-zero exit.
pub(crate) fn api_call(
    api: &ApiOpts,
    method: &str,
    path: &str,
    body: Option<&serde_json::Value>,
) -> Result<()> {
    let key = load_key(&api.key)?;
    let client = cpid::api::client::ApiClient::new(&api.server);
    let response = client.signed(method, path, body, &key)?;
    if !(200..300).contains(&response.status) {
        let code = response.body["error"].as_str().unwrap_or("error");
        let reason = response.body["reason"].as_str().unwrap_or(&response.text);
        bail!("{} {}: {code}: {reason}", method, path);
    }
    if api.json {
        println!("{}", serde_json::to_string_pretty(&response.body)?);
    } else {
        let id = response.body["identifier"].as_str().unwrap_or("?");
        let status = response.body["status"].as_str().unwrap_or("?");
        let version = &response.body["version"];
        println!("{id}");
        eprintln!("{status}, version {version}");
    }
    Ok(())
}
