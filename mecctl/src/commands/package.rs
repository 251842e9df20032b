//! `mecctl package`: onboarding (build, upload with progress, wait, every problem with its
//! path), listing, the AppD, enabling, disabling and deleting packages.

use std::path::Path;
use std::time::Instant;

use api_specs::mm1::app_pkgm::{
    AppPkgInfo, AppPkgInfoModifications, Checksum, CreateAppPkg, OperationalState,
};
use app_package::build::{SigningKey, build};
use reqwest::Method;
use serde_json::Value;

use super::Ctx;
use crate::cli::PackageCommand;
use crate::client::{APP_PKGM, Body, segment, typed};
use crate::error::{Error, onboarding_problems, state_refusal};
use crate::output::{
    Format, Kind, enum_name, or_dash, print_list, print_one, print_value, watch_list,
};

/// Packages as a table.
pub struct PackageKind;

/// Whether onboarding failed (the MEAO keeps the reason as `onboardingFailureDetails`).
fn failed(p: &AppPkgInfo) -> bool {
    p.onboarding_failure_details.is_some()
}

impl Kind for PackageKind {
    type Item = AppPkgInfo;
    const HEADERS: &'static [&'static str] = &[
        "ID",
        "NAME",
        "VERSION",
        "APPD-ID",
        "ONBOARDING",
        "OPERATIONAL",
        "USAGE",
    ];

    fn id(p: &AppPkgInfo) -> String {
        p.id.clone()
    }

    fn row(&self, p: &AppPkgInfo) -> Vec<String> {
        let state = enum_name(&p.onboarding_state);
        vec![
            p.id.clone(),
            or_dash(Some(&p.app_name)),
            or_dash(Some(&p.app_software_version)),
            or_dash(Some(&p.app_d_id)),
            if failed(p) {
                format!("{state} (failed)")
            } else {
                state
            },
            enum_name(&p.operational_state),
            enum_name(&p.usage_state),
        ]
    }
}

fn package_path(id: &str) -> String {
    format!("{APP_PKGM}/app_packages/{}", segment(id))
}

async fn list(ctx: &Ctx) -> Result<Vec<(AppPkgInfo, Value)>, Error> {
    ctx.client.list(&format!("{APP_PKGM}/app_packages")).await
}

/// The package `reference` names: its id, its AppD id, or its (unique) application name.
pub async fn resolve(ctx: &Ctx, reference: &str) -> Result<AppPkgInfo, Error> {
    for path in [
        package_path(reference),
        format!("{APP_PKGM}/onboarded_app_packages/{}", segment(reference)),
    ] {
        match ctx.client.get_as(&path).await {
            Ok((p, _)) => return Ok(p),
            Err(e) if e.is_not_found() => {}
            Err(e) => return Err(e),
        }
    }
    let named: Vec<AppPkgInfo> = list(ctx)
        .await?
        .into_iter()
        .map(|(p, _)| p)
        .filter(|p| p.app_name == reference)
        .collect();
    match named.as_slice() {
        [one] => Ok(one.clone()),
        [] => Err(Error::NotFound(format!(
            "no application package {reference}"
        ))),
        many => Err(Error::Usage(format!(
            "{} packages are named {reference}: use an id or AppD id ({})",
            many.len(),
            many.iter()
                .map(|p| p.id.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ))),
    }
}

/// The zip to upload: built from a directory (signed when asked) or read from a file.
fn content(path: &Path, sign: Option<(&Path, &Path)>) -> Result<Vec<u8>, Error> {
    if !path.is_dir() {
        if sign.is_some() {
            return Err(Error::Usage(
                "--sign-cert and --sign-key sign a package built from a directory; a zip is uploaded as it is".into(),
            ));
        }
        return std::fs::read(path).map_err(Error::io(path.display()));
    }
    let key = sign
        .map(|(cert, key)| SigningKey::from_pem_files(cert, key))
        .transpose()
        .map_err(|e| Error::Usage(crate::error::chain(&e)))?;
    build(path, key.as_ref().map(SigningKey::signer)).map_err(|e| Error::Local(Box::new(e)))
}

/// Prints why onboarding failed, every problem with its path; the error to end with (a
/// conflict when the same AppD version is already onboarded).
fn report_failure(p: &AppPkgInfo) -> Error {
    let label = if p.app_name.is_empty() {
        &p.id
    } else {
        &p.app_name
    };
    eprintln!("package {label} ({}) failed onboarding:", p.id);
    let problem = p.onboarding_failure_details.as_ref();
    for line in problem.map(onboarding_problems).unwrap_or_default() {
        eprintln!("  {line}");
    }
    let message = format!(
        "onboarding failed; the package resource stays until mecctl package rm {}",
        p.id
    );
    if problem.is_some_and(state_refusal) {
        Error::Conflict(message)
    } else {
        Error::Failed(message)
    }
}

/// Creates a package resource, uploads `path` into it and onboards it.
async fn push(
    ctx: &Ctx,
    path: &Path,
    name: Option<String>,
    version: Option<String>,
    sign: Option<(&Path, &Path)>,
    wait: bool,
) -> Result<(), Error> {
    let zip = content(path, sign)?;
    let metadata = app_package::metadata(&zip).unwrap_or_default();
    let missing = |key: &str, flag: &str| {
        Error::Usage(format!(
            "{}: its manifest has no {key}; give {flag}",
            path.display()
        ))
    };
    let request = CreateAppPkg {
        app_pkg_name: name
            .or(metadata.name)
            .ok_or_else(|| missing("app_product_name", "--name"))?,
        app_pkg_version: version
            .or(metadata.version)
            .ok_or_else(|| missing("app_package_version", "--pkg-version"))?,
        app_provider: metadata.provider,
        checksum: Some(Checksum {
            algorithm: "SHA-256".into(),
            hash: app_package::sha256_hex(&zip),
        }),
        app_pkg_path: None,
        user_defined_data: None,
    };
    let body = serde_json::to_value(&request).map_err(|e| Error::Local(Box::new(e)))?;
    let created = ctx
        .client
        .call(Method::POST, &format!("{APP_PKGM}/app_packages"), body)
        .await?;
    let created: AppPkgInfo = typed("POST /app_packages", &created.body)?;
    let id = created.id;
    let progress = indicatif::ProgressBar::new(zip.len() as u64);
    progress.set_style(
        indicatif::ProgressStyle::with_template(
            "{msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec}",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
        .progress_chars("=> "),
    );
    progress.set_message(format!("uploading {}", request.app_pkg_name));
    let uploaded = ctx
        .client
        .send(
            Method::PUT,
            &format!("{}/package_content", package_path(&id)),
            Body::Zip {
                content: zip.into(),
                progress: Some(progress.clone()),
            },
            "application/json",
        )
        .await;
    progress.finish_and_clear();
    let path_of = package_path(&id);
    if let Err(e) = uploaded {
        // a refused upload leaves the reason on the package
        return match ctx.client.get_as::<AppPkgInfo>(&path_of).await {
            Ok((p, _)) if failed(&p) => Err(report_failure(&p)),
            _ => Err(e),
        };
    }
    let deadline = Instant::now() + ctx.timeout;
    let (mut info, mut value): (AppPkgInfo, Value) = ctx.client.get_as(&path_of).await?;
    while wait && enum_name(&info.onboarding_state) != "ONBOARDED" && !failed(&info) {
        if Instant::now() >= deadline {
            return Err(Error::Timeout(format!(
                "package {id} is still {} after {} s",
                enum_name(&info.onboarding_state),
                ctx.timeout.as_secs()
            )));
        }
        tokio::time::sleep(ctx.interval).await;
        (info, value) = ctx.client.get_as(&path_of).await?;
    }
    if failed(&info) {
        return Err(report_failure(&info));
    }
    print_one(&PackageKind, ctx.format, &value, "")
}

/// What `package get` shows below the row.
fn details(p: &AppPkgInfo) -> String {
    let mut out = String::new();
    let mut line = |k: &str, v: &str| out.push_str(&format!("{k:<12}{v}\n"));
    line("provider:", &or_dash(p.app_provider.as_deref()));
    line(
        "appd:",
        &format!(
            "{} (version {})",
            or_dash(Some(&p.app_d_id)),
            or_dash(Some(&p.app_d_version))
        ),
    );
    line(
        "checksum:",
        &format!(
            "{} {}",
            p.checksum.algorithm,
            or_dash(Some(&p.checksum.hash))
        ),
    );
    line(
        "signed:",
        if p.signing_certificate.is_some() {
            "yes"
        } else {
            "no"
        },
    );
    if !p.mec_info.is_empty() {
        line("mec:", &p.mec_info.join(", "));
    }
    for image in &p.software_images {
        line(
            "image:",
            &format!("{} {} ({})", image.name, image.version, image.image_path),
        );
    }
    if let Some(problem) = &p.onboarding_failure_details {
        out.push_str("onboarding failed:\n");
        for l in onboarding_problems(problem) {
            out.push_str(&format!("  {l}\n"));
        }
    }
    out
}

async fn set_state(ctx: &Ctx, reference: &str, state: OperationalState) -> Result<(), Error> {
    let p = resolve(ctx, reference).await?;
    let body = serde_json::to_value(AppPkgInfoModifications {
        operational_state: state,
    })
    .map_err(|e| Error::Local(Box::new(e)))?;
    ctx.client
        .call(Method::PATCH, &package_path(&p.id), body)
        .await?;
    match ctx.format {
        Format::Table => outln!("package {} is {}", p.app_name, enum_name(&state)),
        Format::Id => outln!("{}", p.id),
        format => print_value(format, &ctx.client.get(&package_path(&p.id)).await?)?,
    }
    Ok(())
}

/// Runs a `package` command.
pub async fn run(ctx: &Ctx, command: PackageCommand) -> Result<(), Error> {
    match command {
        PackageCommand::Push {
            path,
            name,
            version,
            sign_cert,
            sign_key,
            wait,
        } => {
            let sign = sign_cert.as_deref().zip(sign_key.as_deref());
            push(ctx, &path, name, version, sign, wait).await
        }
        PackageCommand::Ls { watch } => {
            let fetch = || async {
                Ok((
                    PackageKind,
                    list(ctx).await?.into_iter().map(|(_, v)| v).collect(),
                ))
            };
            if watch {
                return watch_list(ctx.format, ctx.interval, fetch).await;
            }
            let (kind, values) = fetch().await?;
            print_list(&kind, ctx.format, &values)
        }
        PackageCommand::Get { package, watch } => {
            let id = resolve(ctx, &package).await?.id;
            if watch {
                return watch_list(ctx.format, ctx.interval, || async {
                    Ok((PackageKind, vec![ctx.client.get(&package_path(&id)).await?]))
                })
                .await;
            }
            let (p, value): (AppPkgInfo, Value) = ctx.client.get_as(&package_path(&id)).await?;
            print_one(&PackageKind, ctx.format, &value, &details(&p))
        }
        PackageCommand::Appd { package } => {
            let p = resolve(ctx, &package).await?;
            let path = format!("{}/appd", package_path(&p.id));
            match ctx.format {
                Format::Table | Format::Id => {
                    let answer = ctx
                        .client
                        .send(Method::GET, &path, Body::Empty, "text/plain")
                        .await?;
                    out!("{}", answer.body.as_str().unwrap_or_default());
                }
                format => print_value(format, &ctx.client.get(&path).await?)?,
            }
            Ok(())
        }
        PackageCommand::Enable { package } => {
            set_state(ctx, &package, OperationalState::Enabled).await
        }
        PackageCommand::Disable { package } => {
            set_state(ctx, &package, OperationalState::Disabled).await
        }
        PackageCommand::Rm { package } => {
            let p = resolve(ctx, &package).await?;
            ctx.client
                .send(
                    Method::DELETE,
                    &package_path(&p.id),
                    Body::Empty,
                    "application/json",
                )
                .await?;
            outln!("deleted package {} ({})", or_dash(Some(&p.app_name)), p.id);
            Ok(())
        }
    }
}
