//! `show NAME`: what a cache holds, secrets redacted.

use identity_cache_persistence::{
    CachePersistence, FilePersistence, token_cache::TokenCacheDocument,
};
use serde::Serialize;

use crate::{
    context::Context,
    exit::{Code, Failure},
    inventory::Backend,
    keyring, output,
    summary::{self, Summary},
    time,
};

#[derive(Debug, Serialize)]
struct Shown {
    name: String,
    stored_in: &'static str,
    backend: Backend,
    size: usize,
    #[serde(flatten)]
    summary: Summary,
}

/// The blob of cache `name` and where it was: a kernel-keyring file is decrypted with its
/// key; another non-empty file is a plaintext cache; otherwise (a marker, or nothing) the
/// keyring item of the profile.
pub fn load(context: &Context, name: &str) -> Result<(Backend, Vec<u8>), Failure> {
    let path = context.cache_path(name)?;
    let file_len = std::fs::metadata(&path).map(|m| m.len()).ok();
    if file_len.is_some_and(|len| len > 0) && crate::kernel_keyring::is_cache_file(&path) {
        return match crate::kernel_keyring::persistence(&path)?.load()? {
            Some(blob) => Ok((Backend::KernelKeyring, blob)),
            None => Err(Failure::new(
                Code::NotFound,
                format!(
                    "the cache {name} is encrypted under a kernel key that is gone (reboot, keyctl unlink or revoke): it reads as empty, and the next sign-in starts it over"
                ),
            )),
        };
    }
    if file_len.is_some_and(|len| len > 0) {
        let blob = FilePersistence::new(&path)?.load()?;
        if let Some(blob) = blob {
            return Ok((Backend::PlaintextFile, blob));
        }
    }
    keyring::check_for(context, name, file_len.is_some())?;
    let blob = keyring::persistence(context, &path)?.load()?;
    match blob {
        Some(blob) if file_len.is_some() => Ok((Backend::SecretService, blob)),
        Some(blob) => Ok((Backend::SecretServiceWithoutMarker, blob)),
        None => Err(Failure::new(
            Code::NotFound,
            format!(
                "no cache named {name:?}: neither a file in {} nor a Secret Service item of profile {} (see `identity-cache list`)",
                context.dir.display(),
                context.profile
            ),
        )),
    }
}

/// Why the blob of cache `name` at `path` does not parse, and what the SDKs will do.
pub fn corrupt_message(
    name: &str,
    path: &std::path::Path,
    corrupt: &impl std::fmt::Display,
) -> String {
    format!(
        "the cache {name} does not parse: {corrupt}. The next sign-in keeps a copy at {}.corrupt-<epoch seconds> and starts an empty cache",
        path.display()
    )
}

pub fn run(context: &Context, name: &str, json: bool) -> Result<Code, Failure> {
    let (backend, blob) = load(context, name)?;
    let doc = TokenCacheDocument::parse(&blob).map_err(|corrupt| {
        let path = context.dir.join(name);
        Failure::new(Code::CorruptCache, corrupt_message(name, &path, &corrupt))
    })?;
    let shown = Shown {
        name: name.to_owned(),
        stored_in: backend.describe(),
        backend,
        size: blob.len(),
        summary: summary::summarize(&doc, time::now_epoch()),
    };
    if json {
        output::json(&shown);
    } else {
        print_human(&shown);
    }
    Ok(Code::Ok)
}

fn print_human(shown: &Shown) {
    let summary = &shown.summary;
    let or_dash = |v: &Option<String>| v.clone().unwrap_or_else(|| "-".to_owned());
    println!(
        "Cache {} ({}, {}):",
        shown.name,
        shown.stored_in,
        output::size(shown.size as u64)
    );
    println!("\nAccounts ({}):", summary.accounts.len());
    if !summary.accounts.is_empty() {
        let rows: Vec<Vec<String>> = summary
            .accounts
            .iter()
            .map(|a| {
                vec![
                    or_dash(&a.username),
                    or_dash(&a.home_account_id),
                    or_dash(&a.realm),
                    or_dash(&a.environment),
                    or_dash(&a.authority_type),
                ]
            })
            .collect();
        println!(
            "{}",
            indent(&output::table(
                &["USERNAME", "HOME ACCOUNT", "TENANT", "ENVIRONMENT", "TYPE"],
                &rows
            ))
        );
    }
    println!("\nTokens ({}):", summary.tokens.len());
    if !summary.tokens.is_empty() {
        let rows: Vec<Vec<String>> = summary
            .tokens
            .iter()
            .map(|t| {
                let expiry = match (&t.expires_on, t.expired) {
                    (Some(at), Some(true)) => format!("{at} (expired)"),
                    (Some(at), _) => at.clone(),
                    (None, _) => "-".to_owned(),
                };
                vec![
                    t.kind.clone(),
                    or_dash(&t.client_id),
                    or_dash(&t.home_account_id),
                    or_dash(&t.realm),
                    if t.scopes.is_empty() {
                        "-".to_owned()
                    } else {
                        t.scopes.join(" ")
                    },
                    expiry,
                    t.secret.to_owned(),
                ]
            })
            .collect();
        println!(
            "{}",
            indent(&output::table(
                &[
                    "KIND", "CLIENT", "ACCOUNT", "TENANT", "SCOPES", "EXPIRES", "SECRET"
                ],
                &rows
            ))
        );
    }
    println!("\nApplications ({}):", summary.apps.len());
    if !summary.apps.is_empty() {
        let rows: Vec<Vec<String>> = summary
            .apps
            .iter()
            .map(|a| {
                vec![
                    or_dash(&a.client_id),
                    or_dash(&a.environment),
                    or_dash(&a.family_id),
                ]
            })
            .collect();
        println!(
            "{}",
            indent(&output::table(&["CLIENT", "ENVIRONMENT", "FAMILY"], &rows))
        );
    }
    let sections: Vec<String> = summary
        .sections
        .iter()
        .map(|s| {
            let unknown = if s.known { "" } else { ", unknown" };
            format!("{} ({}{unknown})", s.name, s.entries)
        })
        .collect();
    println!(
        "\nSections: {}; {} unknown to this tool, kept as they are by the SDKs.",
        if sections.is_empty() {
            "none".to_owned()
        } else {
            sections.join(", ")
        },
        summary.unknown_sections
    );
    println!("Token values are never shown.");
}

fn indent(text: &str) -> String {
    text.lines()
        .map(|l| format!("  {l}"))
        .collect::<Vec<_>>()
        .join("\n")
}
