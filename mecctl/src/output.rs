//! Output: a readable table by default, the MEAO's JSON as received (`-o json`) or as YAML
//! (`-o yaml`) for scripts, or only the ids (`-o id`) for shell variables.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::time::Duration;

use serde::Deserialize as _;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::error::Error;

/// Writes `text` to standard output. When the reader went away (`mecctl … | head`), mecctl
/// ends at once with 141, as a process killed by SIGPIPE does.
pub fn write_out(text: &str) {
    let mut stdout = std::io::stdout().lock();
    if let Err(e) = stdout
        .write_all(text.as_bytes())
        .and_then(|()| stdout.flush())
        && e.kind() == std::io::ErrorKind::BrokenPipe
    {
        std::process::exit(141);
    }
}

/// `print!` through [`write_out`].
macro_rules! out {
    ($($arg:tt)*) => { $crate::output::write_out(&format!($($arg)*)) };
}

/// `println!` through [`write_out`].
macro_rules! outln {
    () => { $crate::output::write_out("\n") };
    ($($arg:tt)*) => { $crate::output::write_out(&format!("{}\n", format_args!($($arg)*))) };
}

/// The output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// Aligned columns for people.
    Table,
    /// The resources as JSON.
    Json,
    /// The resources as YAML.
    Yaml,
    /// The resources' ids, one per line.
    Id,
}

/// Rows of aligned columns.
#[derive(Debug, Clone, Default)]
pub struct Table {
    rows: Vec<Vec<String>>,
}

impl Table {
    /// A table with these column titles.
    pub fn new(headers: &[&str]) -> Self {
        Self {
            rows: vec![headers.iter().map(|h| (*h).to_owned()).collect()],
        }
    }

    /// Adds a row.
    pub fn push(&mut self, row: Vec<String>) {
        self.rows.push(row);
    }

    /// The table as text, optionally without its title row.
    pub fn render(&self, with_headers: bool) -> String {
        let columns = self.rows.iter().map(Vec::len).max().unwrap_or(0);
        let widths: Vec<usize> = (0..columns)
            .map(|c| {
                self.rows
                    .iter()
                    .filter_map(|r| r.get(c))
                    .map(|s| s.chars().count())
                    .max()
                    .unwrap_or(0)
            })
            .collect();
        let mut out = String::new();
        for row in self.rows.iter().skip(usize::from(!with_headers)) {
            let mut line = String::new();
            for (c, cell) in row.iter().enumerate() {
                line.push_str(cell);
                if c + 1 < row.len() {
                    let pad = widths[c] - cell.chars().count() + 3;
                    line.extend(std::iter::repeat_n(' ', pad));
                }
            }
            out.push_str(line.trim_end());
            out.push('\n');
        }
        out
    }
}

/// A resource kind as mecctl shows it.
pub trait Kind {
    /// Its api-specs type.
    type Item: DeserializeOwned;
    /// Column titles of its table.
    const HEADERS: &'static [&'static str];
    /// Its id.
    fn id(item: &Self::Item) -> String;
    /// Its table row (`self` holds what the row needs beyond the item, e.g. names of others).
    fn row(&self, item: &Self::Item) -> Vec<String>;
}

fn parse<K: Kind>(value: &Value) -> Result<K::Item, Error> {
    K::Item::deserialize(value).map_err(|e| Error::Unexpected {
        request: "a listed resource".into(),
        detail: e.to_string(),
    })
}

/// Prints resources of one kind (the MEAO's JSON) in `format`.
pub fn print_list<K: Kind>(kind: &K, format: Format, items: &[Value]) -> Result<(), Error> {
    match format {
        Format::Table => {
            let mut table = Table::new(K::HEADERS);
            for item in items {
                table.push(kind.row(&parse::<K>(item)?));
            }
            out!("{}", table.render(true));
        }
        Format::Id => {
            for item in items {
                outln!("{}", K::id(&parse::<K>(item)?));
            }
        }
        Format::Json | Format::Yaml => print_value(format, &Value::Array(items.to_vec()))?,
    }
    Ok(())
}

/// Prints one resource: its row and `details` below it as a table, else as `format` says.
pub fn print_one<K: Kind>(
    kind: &K,
    format: Format,
    item: &Value,
    details: &str,
) -> Result<(), Error> {
    match format {
        Format::Table => {
            let mut table = Table::new(K::HEADERS);
            table.push(kind.row(&parse::<K>(item)?));
            out!("{}", table.render(true));
            if !details.is_empty() {
                out!("\n{details}");
            }
        }
        Format::Id => outln!("{}", K::id(&parse::<K>(item)?)),
        Format::Json | Format::Yaml => print_value(format, item)?,
    }
    Ok(())
}

/// Prints a JSON value as JSON or YAML.
pub fn print_value(format: Format, value: &Value) -> Result<(), Error> {
    match format {
        Format::Yaml => out!(
            "{}",
            serde_yaml::to_string(value).map_err(|e| Error::Local(Box::new(e)))?
        ),
        _ => outln!(
            "{}",
            serde_json::to_string_pretty(value).map_err(|e| Error::Local(Box::new(e)))?
        ),
    }
    Ok(())
}

/// Follows a list (`--watch`): prints it, then every resource that changes or appears, and
/// the id of every one that disappears, polling every `interval`, until interrupted. `fetch`
/// returns the list with the kind that renders it.
pub async fn watch_list<K, F, Fut>(
    format: Format,
    interval: Duration,
    fetch: F,
) -> Result<(), Error>
where
    K: Kind,
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = Result<(K, Vec<Value>), Error>>,
{
    let mut seen: BTreeMap<String, Value> = BTreeMap::new();
    let mut first = true;
    loop {
        let mut now = BTreeMap::new();
        let mut changed = Vec::new();
        let (kind, values) = fetch().await?;
        for value in values {
            let item = parse::<K>(&value)?;
            let id = K::id(&item);
            if seen.get(&id) != Some(&value) {
                changed.push((item, value.clone()));
            }
            now.insert(id, value);
        }
        match format {
            Format::Table => {
                let mut table = Table::new(K::HEADERS);
                for (item, _) in &changed {
                    table.push(kind.row(item));
                }
                if first || !changed.is_empty() {
                    out!("{}", table.render(first));
                }
            }
            Format::Id => changed.iter().for_each(|(i, _)| outln!("{}", K::id(i))),
            Format::Json | Format::Yaml => {
                for (_, value) in &changed {
                    print_value(format, value)?;
                }
            }
        }
        for id in seen.keys().filter(|id| !now.contains_key(*id)) {
            outln!("{id}   (deleted)");
        }
        seen = now;
        first = false;
        tokio::time::sleep(interval).await;
    }
}

/// How long ago `seconds` (Unix time) was, as kubectl shows ages: `42s`, `7m`, `3h`, `12d`.
pub fn age(seconds: u64) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let ago = now.saturating_sub(seconds);
    match ago {
        0..120 => format!("{ago}s"),
        120..7200 => format!("{}m", ago / 60),
        7200..172_800 => format!("{}h", ago / 3600),
        _ => format!("{}d", ago / 86_400),
    }
}

/// An optional text, `-` when absent or empty.
pub fn or_dash(s: Option<&str>) -> String {
    s.filter(|s| !s.is_empty()).unwrap_or("-").to_owned()
}

/// An enum's name as the MEAO writes it (its serde name), e.g. `FAILED_TEMP`.
pub fn enum_name<T: serde::Serialize>(value: &T) -> String {
    match serde_json::to_value(value) {
        Ok(Value::String(s)) => s,
        _ => "-".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_align() {
        let mut t = Table::new(&["ID", "STATE"]);
        t.push(vec!["a-long-id".into(), "ONBOARDED".into()]);
        t.push(vec!["b".into(), "-".into()]);
        assert_eq!(
            t.render(true),
            "ID          STATE\na-long-id   ONBOARDED\nb           -\n"
        );
        assert_eq!(t.render(false).lines().count(), 2);
    }

    #[test]
    fn ages_and_names() {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs();
        assert_eq!(age(now - 5), "5s");
        assert_eq!(age(now - 600), "10m");
        assert_eq!(age(now - 3 * 86_400), "3d");
        assert_eq!(
            enum_name(&api_specs::mm1::app_lcm::LcmOperationState::FailedTemp),
            "FAILED_TEMP"
        );
        assert_eq!(or_dash(Some("")), "-");
    }
}
