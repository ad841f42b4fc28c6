//! `clear NAME`: delete a cache under its lock, after confirmation.

use std::{
    io::{BufRead as _, Write as _},
    time::Duration,
};

use identity_cache_persistence::{CachePersistence, FilePersistence};
use serde::Serialize;

use crate::{
    cli::ClearArgs,
    context::Context,
    exit::{Code, Failure},
    inventory::Backend,
    keyring, output,
};

#[derive(Debug, Serialize)]
struct Cleared {
    name: String,
    stored_in: &'static str,
    /// Whether there was anything to delete.
    deleted: bool,
}

pub fn run(context: &Context, args: &ClearArgs, json: bool) -> Result<Code, Failure> {
    let name = args.name.as_str();
    let path = context.cache_path(name)?;
    let file_len = std::fs::metadata(&path).map(|m| m.len()).ok();
    // A file with content is a plaintext cache; anything else is the keyring's (its
    // delete also removes the marker file).
    let (backend, persistence): (Backend, Box<dyn CachePersistence>) =
        if file_len.is_some_and(|len| len > 0) && crate::kernel_keyring::is_cache_file(&path) {
            // Deletes the file; the key stays, as the backend's own delete leaves it.
            (
                Backend::KernelKeyring,
                crate::kernel_keyring::persistence(&path)?,
            )
        } else if file_len.is_some_and(|len| len > 0) {
            (
                Backend::PlaintextFile,
                Box::new(FilePersistence::new(&path)?),
            )
        } else {
            keyring::check_for(context, name, file_len.is_some())?;
            (
                Backend::SecretService,
                keyring::persistence(context, &path)?,
            )
        };
    if persistence.version()?.is_none() {
        return Err(Failure::new(
            Code::NotFound,
            format!(
                "no cache named {name:?} in {} or the Secret Service (profile {})",
                context.dir.display(),
                context.profile
            ),
        ));
    }
    if !args.yes && !confirm(name, backend, context)? {
        return Err(Failure::new(
            Code::NotConfirmed,
            format!("not confirmed; the cache {name} was left as it is"),
        ));
    }
    // Under the lock, as the SDKs write: no sign-in reads half a delete or writes over it.
    let guard = persistence.lock(Duration::from_secs(args.wait))?;
    let deleted = persistence.delete();
    guard.release()?;
    let deleted = deleted?;
    let cleared = Cleared {
        name: name.to_owned(),
        stored_in: backend.describe(),
        deleted,
    };
    if json {
        output::json(&cleared);
    } else {
        println!(
            "Deleted the cache {name} ({}). Sign in again to use it.",
            backend.describe()
        );
    }
    Ok(Code::Ok)
}

/// Asks on stderr, reads the answer from stdin: `y` or `yes` confirms; anything else,
/// or end of input, does not.
fn confirm(name: &str, backend: Backend, context: &Context) -> Result<bool, Failure> {
    let shared = !matches!(backend, Backend::PlaintextFile | Backend::KernelKeyring)
        && context.profile != identity_cache_persistence::KeyringProfile::AzureIdentityPython;
    let mut stderr = std::io::stderr();
    let _ = write!(
        stderr,
        "Delete the token cache {name} ({}){}? Everyone signed in through it signs in again. [y/N] ",
        backend.describe(),
        if shared {
            format!(
                ", whose item profile {} shares with every cache name",
                context.profile
            )
        } else {
            String::new()
        }
    );
    let _ = stderr.flush();
    let mut answer = String::new();
    let read = std::io::stdin()
        .lock()
        .read_line(&mut answer)
        .map_err(|e| Failure::new(Code::Failed, format!("could not read the answer: {e}")))?;
    if read == 0 {
        // End of input: end the prompt's line before the refusal is printed.
        let _ = writeln!(stderr);
    }
    let answer = answer.trim().to_ascii_lowercase();
    Ok(answer == "y" || answer == "yes")
}
