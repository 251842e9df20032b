//! The Helm chart of a package (the MCIOP its AppD names in `mciopId`) as the packaged
//! chart (`.tgz`) a cluster installs: a packaged chart in the package is taken as it is; a chart
//! directory (`mciopId` naming it or its `Chart.yaml`) is packed deterministically.

use std::io::Write;

use flate2::Compression;
use flate2::write::GzEncoder;

use super::PackageProblem;
use super::archive::PackageArchive;

/// Largest packaged chart handed to a cluster (it travels inside one API object).
pub const MAX_CHART_BYTES: usize = 1024 * 1024;

/// The packaged chart `mciop_id` names in `archive`.
pub fn packaged_chart(
    archive: &mut PackageArchive,
    mciop_id: &str,
) -> Result<Vec<u8>, PackageProblem> {
    let chart = if mciop_id.ends_with(".tgz") || mciop_id.ends_with(".tar.gz") {
        let mut bytes = Vec::new();
        archive.copy_to(mciop_id, &mut bytes)?;
        bytes
    } else {
        pack(archive, mciop_id)?
    };
    if chart.len() > MAX_CHART_BYTES {
        return Err(PackageProblem::new(
            mciop_id,
            format!(
                "packaged chart is {} bytes, more than {MAX_CHART_BYTES}",
                chart.len()
            ),
        ));
    }
    Ok(chart)
}

fn pack(archive: &mut PackageArchive, mciop_id: &str) -> Result<Vec<u8>, PackageProblem> {
    let dir = mciop_id
        .strip_suffix("Chart.yaml")
        .unwrap_or(mciop_id)
        .trim_end_matches('/');
    let chart_name = dir.rsplit('/').next().unwrap_or(dir);
    let prefix = format!("{dir}/");
    let files: Vec<String> = archive
        .names()
        .filter(|n| n.starts_with(&prefix))
        .map(str::to_owned)
        .collect();
    if !files.iter().any(|f| f == &format!("{prefix}Chart.yaml")) {
        return Err(PackageProblem::new(
            mciop_id,
            "not a Helm chart: no Chart.yaml in its directory".into(),
        ));
    }
    let io = |e: std::io::Error| PackageProblem::new(mciop_id, format!("cannot pack chart: {e}"));
    let mut tar = tar::Builder::new(GzEncoder::new(Vec::new(), Compression::default()));
    tar.mode(tar::HeaderMode::Deterministic);
    for file in &files {
        let mut bytes = Vec::new();
        archive.copy_to(file, &mut bytes)?;
        if bytes.len() > MAX_CHART_BYTES {
            return Err(PackageProblem::new(file, "chart file too large".into()));
        }
        let mut header = tar::Header::new_gnu();
        header.set_size(bytes.len() as u64);
        header.set_mode(0o644);
        header.set_mtime(0);
        let path = format!("{chart_name}/{}", &file[prefix.len()..]);
        tar.append_data(&mut header, path, bytes.as_slice())
            .map_err(io)?;
    }
    let mut gz = tar.into_inner().map_err(io)?;
    gz.flush().map_err(io)?;
    gz.finish().map_err(io)
}

#[cfg(test)]
mod tests {
    use std::io::Read;

    use super::*;
    use crate::package::archive::ArchiveLimits;

    fn example() -> PackageArchive {
        let zip = app_package::build::build(
            &std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../deploy/examples/packages/iot-gateway"),
            None,
        )
        .unwrap();
        PackageArchive::open(
            Box::new(std::io::Cursor::new(zip)),
            ArchiveLimits::default(),
        )
        .unwrap()
    }

    #[test]
    fn chart_directories_pack_deterministically() {
        let mut archive = example();
        let mciop = "Artifacts/charts/iot-gateway/Chart.yaml";
        let tgz = packaged_chart(&mut archive, mciop).unwrap();
        assert_eq!(tgz, packaged_chart(&mut archive, mciop).unwrap());
        let mut tar = tar::Archive::new(flate2::read::GzDecoder::new(tgz.as_slice()));
        let mut files = Vec::new();
        for entry in tar.entries().unwrap() {
            let mut entry = entry.unwrap();
            let path = entry.path().unwrap().display().to_string();
            let mut text = String::new();
            entry.read_to_string(&mut text).unwrap();
            if path.ends_with("Chart.yaml") {
                assert!(text.contains("name: iot-gateway"));
            }
            files.push(path);
        }
        assert_eq!(
            files,
            [
                "iot-gateway/Chart.yaml",
                "iot-gateway/templates/deployment.yaml",
                "iot-gateway/values.yaml"
            ]
        );
        // the directory itself names the chart too
        assert_eq!(
            packaged_chart(&mut archive, "Artifacts/charts/iot-gateway").unwrap(),
            tgz
        );
    }

    #[test]
    fn what_is_not_a_chart_is_refused() {
        let mut archive = example();
        let err = packaged_chart(&mut archive, "Artifacts/images").unwrap_err();
        assert!(err.to_string().contains("no Chart.yaml"), "{err}");
        assert!(packaged_chart(&mut archive, "Artifacts/missing.tgz").is_err());
    }
}
