//! `mecctl config`: contexts in the config file.

use crate::cli::{ConfigCommand, Global};
use crate::config::{self, ConfigFile};
use crate::error::Error;
use crate::output::{Format, Table, print_value};

/// Runs a `config` command.
pub fn run(global: &Global, command: ConfigCommand) -> Result<(), Error> {
    let path = config::path(global.config.as_deref())?;
    let mut file = ConfigFile::load(&path)?;
    match command {
        ConfigCommand::SetContext {
            name,
            url,
            client,
            ca,
            secret_file,
        } => {
            let existing = file.contexts.get(&name).cloned();
            let mut context = existing.clone().unwrap_or_default();
            if let Some(url) = url {
                context.url = url.trim_end_matches('/').to_owned();
            }
            if let Some(client) = client {
                context.client_id = client;
            }
            if let Some(ca) = ca {
                context.ca_file = Some(absolute(ca)?);
            }
            if let Some(secret) = secret_file {
                context.secret_file = Some(absolute(secret)?);
            }
            if context.url.is_empty() || context.client_id.is_empty() {
                return Err(Error::Usage(format!(
                    "context {name} needs --url and --client-id"
                )));
            }
            file.contexts.insert(name.clone(), context);
            if file.current_context.is_none() {
                file.current_context = Some(name.clone());
            }
            file.save(&path)?;
            let verb = if existing.is_some() {
                "changed"
            } else {
                "created"
            };
            outln!("context {name} {verb} in {}", path.display());
        }
        ConfigCommand::UseContext { name } => {
            if !file.contexts.contains_key(&name) {
                return Err(Error::Usage(format!("no context {name}")));
            }
            file.current_context = Some(name.clone());
            file.save(&path)?;
            outln!("current context: {name}");
        }
        ConfigCommand::GetContexts => match global.output {
            Format::Table => {
                let mut table = Table::new(&["CURRENT", "NAME", "URL", "CLIENT-ID", "CA-FILE"]);
                for (name, c) in &file.contexts {
                    let current = file.current_context.as_deref() == Some(name.as_str());
                    table.push(vec![
                        if current { "*" } else { "" }.into(),
                        name.clone(),
                        c.url.clone(),
                        c.client_id.clone(),
                        c.ca_file
                            .as_ref()
                            .map_or("-".into(), |p| p.display().to_string()),
                    ]);
                }
                out!("{}", table.render(true));
            }
            Format::Id => file.contexts.keys().for_each(|n| outln!("{n}")),
            format => print_value(
                format,
                &serde_json::to_value(&file).map_err(|e| Error::Local(Box::new(e)))?,
            )?,
        },
        ConfigCommand::CurrentContext => match &file.current_context {
            Some(name) => outln!("{name}"),
            None => return Err(Error::Usage("no current context".into())),
        },
        ConfigCommand::DeleteContext { name } => {
            if file.contexts.remove(&name).is_none() {
                return Err(Error::Usage(format!("no context {name}")));
            }
            if file.current_context.as_deref() == Some(name.as_str()) {
                file.current_context = None;
            }
            file.save(&path)?;
            outln!("context {name} deleted");
        }
    }
    Ok(())
}

/// Paths in the config file are absolute, so they mean the same from any directory.
fn absolute(path: std::path::PathBuf) -> Result<std::path::PathBuf, Error> {
    std::path::absolute(&path).map_err(Error::io(path.display()))
}
