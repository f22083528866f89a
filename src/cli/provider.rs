//! `cpid provider register`, `register`, `update`, `withdraw`: a provider's
//! signed calls to its node's HTTP API.

use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand};

use cpid::api::body::{IssueRequest, ProviderRequest, UpdateRequest, ValueInput};
use cpid::api::client::{ApiClient, RecordReply};
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
    /// Sign as this provider or buyer identifier (e.g. 86/US-000001-X):
    /// needed at a node other than the one it registered with.
    #[arg(long = "as", value_name = "ID")]
    pub(crate) party: Option<String>,
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
    fn load(&self) -> Result<Vec<ValueInput>> {
        if let Some(path) = &self.file {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading {}", path.display()))?;
            let v: serde_json::Value = serde_json::from_str(&text)
                .with_context(|| format!("{} is not JSON", path.display()))?;
            let values = match v {
                serde_json::Value::Object(mut o) => o
                    .remove("values")
                    .with_context(|| format!("{} has no \"values\"", path.display()))?,
                other => other,
            };
            return serde_json::from_value(values).with_context(|| {
                format!(
                    "{}: values are {{\"type\", \"data\", \"ttl\"?, \"index\"?}}",
                    path.display()
                )
            });
        }
        if self.values.is_empty() {
            bail!("give at least one --value TYPE=DATA or --file");
        }
        self.values
            .iter()
            .map(|v| {
                let (kind, data) = v
                    .split_once('=')
                    .with_context(|| format!("--value {v:?} is not TYPE=DATA"))?;
                Ok(ValueInput {
                    index: None,
                    kind: kind.to_string(),
                    data: data.to_string(),
                    ttl: 0,
                })
            })
            .collect()
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
    let request = ProviderRequest {
        name,
        organisation,
        contact,
        region,
        public_key: key.public().to_public_pem(),
    };
    print_reply(&api, api.client()?.register_provider(&request, &key)?)
}

pub(crate) fn register(api: &ApiOpts, class: &str, values: &ValueOpts) -> Result<()> {
    let request = IssueRequest {
        class: class.to_string(),
        values: values.load()?,
    };
    let key = load_key(&api.key)?;
    print_reply(api, api.client()?.register(&request, &key)?)
}

pub(crate) fn update(id: &str, api: &ApiOpts, values: &ValueOpts) -> Result<()> {
    let id = Identifier::parse(id)?;
    let request = UpdateRequest {
        values: values.load()?,
    };
    let key = load_key(&api.key)?;
    print_reply(api, api.client()?.update(&id, &request, &key)?)
}

pub(crate) fn withdraw(id: &str, api: &ApiOpts) -> Result<()> {
    let id = Identifier::parse(id)?;
    let key = load_key(&api.key)?;
    print_reply(api, api.client()?.withdraw(&id, &key)?)
}

impl ApiOpts {
    /// A client of `--server`.
    pub(crate) fn client(&self) -> Result<ApiClient> {
        let party = match &self.party {
            Some(p) => Some(Identifier::parse(p).with_context(|| format!("--as {p}"))?),
            None => None,
        };
        Ok(ApiClient::new(&self.server).signing_as(party.as_ref()))
    }
}

/// Prints the identifier (or the record with `--json`); the status and
/// version go to stderr.
pub(crate) fn print_reply(api: &ApiOpts, reply: RecordReply) -> Result<()> {
    if api.json {
        println!("{}", serde_json::to_string_pretty(&reply.json)?);
    } else {
        let r = reply.record.record();
        println!("{}", r.identifier);
        eprintln!("{}, version {}", r.status.as_str(), r.version);
    }
    Ok(())
}
