//! Package metadata: `TOSCA-Metadata/TOSCA.meta` (CSAR option 1) or a root `.mf` manifest next
//! to its descriptor (option 2), and the manifest's per-file digests and optional CMS signature
//! (ETSI GS NFV-SOL 004 clauses 4.3 and 5).

use crate::PackageProblem;

/// Where the parts of a package are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layout {
    /// The AppD file.
    pub descriptor: String,
    /// The manifest file, if any.
    pub manifest: Option<String>,
    /// The signing certificate file, if any.
    pub certificate: Option<String>,
}

/// Finds the AppD, manifest and certificate among `names` (reading TOSCA.meta via `read`).
pub fn locate(
    names: &[&str],
    read: &mut dyn FnMut(&str) -> Result<String, PackageProblem>,
) -> Result<Layout, PackageProblem> {
    const META: &str = "TOSCA-Metadata/TOSCA.meta";
    if names.contains(&META) {
        let text = read(META)?;
        let mut fields = std::collections::HashMap::new();
        for line in text.lines() {
            if let Some((k, v)) = line.split_once(':') {
                fields.insert(k.trim().to_owned(), v.trim().to_owned());
            }
        }
        let descriptor = fields
            .get("Entry-Definitions")
            .cloned()
            .ok_or_else(|| PackageProblem::new(META, "Entry-Definitions is missing".into()))?;
        if !names.contains(&descriptor.as_str()) {
            return Err(PackageProblem::new(
                META,
                format!("Entry-Definitions {descriptor} is not in the package"),
            ));
        }
        let entry = |key: &str| -> Result<Option<String>, PackageProblem> {
            match fields.get(key) {
                Some(path) if names.contains(&path.as_str()) => Ok(Some(path.clone())),
                Some(path) => Err(PackageProblem::new(
                    META,
                    format!("{key} {path} is not in the package"),
                )),
                None => Ok(None),
            }
        };
        return Ok(Layout {
            manifest: entry("ETSI-Entry-Manifest")?,
            certificate: entry("ETSI-Entry-Certificate")?,
            descriptor,
        });
    }
    let root_manifests: Vec<&&str> = names
        .iter()
        .filter(|n| !n.contains('/') && n.ends_with(".mf"))
        .collect();
    let [manifest] = root_manifests.as_slice() else {
        return Err(PackageProblem::new(
            "",
            "no TOSCA-Metadata/TOSCA.meta and not exactly one root .mf manifest: cannot find the AppD".into(),
        ));
    };
    let stem = manifest.trim_end_matches(".mf");
    let descriptor = ["yaml", "yml", "json"]
        .iter()
        .map(|ext| format!("{stem}.{ext}"))
        .find(|d| names.contains(&d.as_str()))
        .ok_or_else(|| {
            PackageProblem::new(
                manifest,
                format!("no {stem}.yaml, .yml or .json beside the manifest"),
            )
        })?;
    let certificate = Some(format!("{stem}.cert")).filter(|c| names.contains(&c.as_str()));
    Ok(Layout {
        descriptor,
        manifest: Some((*manifest).to_string()),
        certificate,
    })
}

/// One digest line group of a manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManifestEntry {
    /// File path in the package.
    pub source: String,
    /// Hash algorithm (SHA-256 or SHA-512).
    pub algorithm: String,
    /// Hex digest.
    pub hash: String,
}

/// A parsed manifest.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Manifest {
    /// The `metadata:` block.
    pub metadata: Vec<(String, String)>,
    /// The file digests.
    pub entries: Vec<ManifestEntry>,
    /// The signed part: the manifest without its embedded signature.
    pub signed_text: String,
    /// The embedded CMS signature (PEM), if any.
    pub signature: Option<String>,
}

/// Parses a manifest; every malformed digest group is reported.
pub fn parse_manifest(path: &str, text: &str) -> Result<Manifest, Vec<PackageProblem>> {
    let (signed_text, signature) = match text.find("-----BEGIN CMS-----") {
        Some(at) => (text[..at].to_owned(), Some(text[at..].to_owned())),
        None => (text.to_owned(), None),
    };
    let mut manifest = Manifest {
        signed_text: signed_text.clone(),
        signature,
        ..Manifest::default()
    };
    let mut problems = Vec::new();
    let mut in_metadata = false;
    let mut current: Option<(String, Option<String>, Option<String>)> = None;
    let flush = |current: &mut Option<(String, Option<String>, Option<String>)>,
                 problems: &mut Vec<PackageProblem>,
                 entries: &mut Vec<ManifestEntry>| {
        if let Some((source, algorithm, hash)) = current.take() {
            match (algorithm, hash) {
                (Some(algorithm), Some(hash)) => entries.push(ManifestEntry {
                    source,
                    algorithm,
                    hash: hash.to_ascii_lowercase(),
                }),
                _ => problems.push(PackageProblem::new(
                    path,
                    format!("Source {source} lacks Algorithm or Hash"),
                )),
            }
        }
    };
    for line in signed_text.lines() {
        let trimmed = line.trim();
        if trimmed.is_empty() {
            in_metadata = false;
            continue;
        }
        if trimmed == "metadata:" {
            in_metadata = true;
            continue;
        }
        let Some((key, value)) = trimmed.split_once(':') else {
            problems.push(PackageProblem::new(
                path,
                format!("unparsable manifest line: {trimmed}"),
            ));
            continue;
        };
        let (key, value) = (key.trim(), value.trim().to_owned());
        if in_metadata && line.starts_with(char::is_whitespace) {
            manifest.metadata.push((key.to_owned(), value));
            continue;
        }
        in_metadata = false;
        match key {
            "Source" => {
                flush(&mut current, &mut problems, &mut manifest.entries);
                current = Some((value, None, None));
            }
            "Algorithm" | "Hash" => match current.as_mut() {
                Some(c) if key == "Algorithm" => c.1 = Some(value),
                Some(c) => c.2 = Some(value),
                None => problems.push(PackageProblem::new(
                    path,
                    format!("{key} before any Source"),
                )),
            },
            _ => {}
        }
    }
    flush(&mut current, &mut problems, &mut manifest.entries);
    if problems.is_empty() {
        Ok(manifest)
    } else {
        Err(problems)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manifest_with_metadata_digests_and_signature() {
        let text = "metadata:\n  app_provider_id: ACME\n  app_package_version: 1.0\n\nSource: Definitions/appd.yaml\nAlgorithm: SHA-256\nHash: ABCD\n\nSource: x\nAlgorithm: SHA-256\nHash: 00\n-----BEGIN CMS-----\nxx\n-----END CMS-----\n";
        let m = parse_manifest("m.mf", text).unwrap();
        assert_eq!(m.metadata.len(), 2);
        assert_eq!(m.entries[0].hash, "abcd");
        assert_eq!(m.entries.len(), 2);
        assert!(m.signature.is_some() && !m.signed_text.contains("CMS"));
        assert!(parse_manifest("m.mf", "Source: a\nAlgorithm: SHA-256\n").is_err());
    }

    #[test]
    fn layouts() {
        let names = ["TOSCA-Metadata/TOSCA.meta", "Definitions/appd.yaml", "m.mf"];
        let mut read = |_: &str| {
            Ok("TOSCA-Meta-File-Version: 1.0\nEntry-Definitions: Definitions/appd.yaml\nETSI-Entry-Manifest: m.mf\n".to_owned())
        };
        let l = locate(&names, &mut read).unwrap();
        assert_eq!(
            (l.descriptor.as_str(), l.manifest.as_deref()),
            ("Definitions/appd.yaml", Some("m.mf"))
        );
        let names = ["app.mf", "app.yaml", "app.cert"];
        let l = locate(&names, &mut |_| unreachable!()).unwrap();
        assert_eq!(
            (l.descriptor.as_str(), l.certificate.as_deref()),
            ("app.yaml", Some("app.cert"))
        );
        assert!(locate(&["a.yaml"], &mut |_| unreachable!()).is_err());
    }
}
