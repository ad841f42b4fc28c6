//! The command line.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};
use identity_cache_persistence::KeyringProfile;

/// Inspect, diagnose and repair the persistent token caches of the Azure SDKs: the files
/// and markers in ~/.IdentityService, their Secret Service (gnome-keyring) items and their
/// MSAL lock files. Never prints a secret.
#[derive(Debug, Parser)]
#[command(name = "identity-cache", version, after_help = crate::exit::HELP)]
pub struct Cli {
    #[command(flatten)]
    pub global: Global,
    #[command(subcommand)]
    pub command: Command,
}

/// Where the caches are; accepted before or after the subcommand.
#[derive(Debug, Args)]
pub struct Global {
    /// The cache directory [default: ~/.IdentityService, as the Azure SDKs]
    #[arg(long, global = true, value_name = "DIR", env = "IDENTITY_CACHE_DIR")]
    pub dir: Option<PathBuf>,

    /// Which SDK's Secret Service item layout the caches use (Linux)
    #[arg(long, global = true, value_enum, default_value_t = Profile::AzureIdentityPython)]
    pub profile: Profile,

    /// The D-Bus address of the bus the Secret Service is on [default: the session bus,
    /// DBUS_SESSION_BUS_ADDRESS]
    #[arg(long, global = true, value_name = "ADDRESS")]
    pub dbus_address: Option<String>,

    /// Print one JSON document on stdout instead of text, for scripts
    #[arg(long, global = true)]
    pub json: bool,

    /// Judge the Secret Service alone, as for programs that turn the kernel-keyring
    /// fallback off (use_kernel_keyring: false); Linux
    #[arg(long, global = true, env = "IDENTITY_CACHE_NO_KERNEL_KEYRING")]
    pub no_kernel_keyring: bool,
}

/// [`KeyringProfile`], as clap spells its values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Profile {
    /// Python azure-identity and Azure CLI: one item per cache name
    AzureIdentityPython,
    /// .NET Azure.Identity: one item for every name, Base64
    AzureIdentityDotnet,
    /// JS @azure/identity-cache-persistence (keytar): one item for every name
    Keytar,
}

impl From<Profile> for KeyringProfile {
    fn from(profile: Profile) -> Self {
        match profile {
            Profile::AzureIdentityPython => KeyringProfile::AzureIdentityPython,
            Profile::AzureIdentityDotnet => KeyringProfile::AzureIdentityDotNet,
            Profile::Keytar => KeyringProfile::Keytar,
        }
    }
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Diagnose why the token cache misbehaves, each problem in plain words with its fix.
    ///
    /// Checks the secure storage (D-Bus session bus, Secret Service, locked keyring, and
    /// the validation probe the SDKs run: an item written, read back and deleted), the
    /// cache directory (ownership, permissions, mode 0700), the cache files (mode 0600),
    /// the lock files (a holder that died) and whether each cache parses. Exits 0 only
    /// when everything is healthy.
    #[command(after_help = crate::exit::HELP)]
    Doctor(DoctorArgs),

    /// List the caches of this user: name, where it is stored, size, last change, lock.
    #[command(after_help = crate::exit::HELP)]
    List,

    /// Show what a cache holds: accounts, token kinds, clients, scopes, expiry times.
    ///
    /// Secrets are never shown; sections this tool does not know are counted.
    #[command(after_help = crate::exit::HELP)]
    Show {
        /// The cache name, e.g. msal.cache or msal.cache.nocae
        name: String,
    },

    /// Delete a cache (its file, or its Secret Service item and marker) under its lock.
    ///
    /// Everyone signed in through it has to sign in again. Asks for confirmation on
    /// stdin unless --yes.
    #[command(after_help = crate::exit::HELP)]
    Clear(ClearArgs),

    /// Remove a cache's lock file, only when its holder is provably dead.
    ///
    /// A live holder's lock is never removed: the command refuses and says which process
    /// holds it.
    #[command(after_help = crate::exit::HELP)]
    Unlock {
        /// The cache name whose NAME.lockfile to remove
        name: String,
    },
}

#[derive(Debug, Args)]
pub struct DoctorArgs {
    /// Plaintext cache files are acceptable here (the SDKs' unsafe_allow_unencrypted_storage):
    /// an unusable keyring is then a warning, not a problem
    #[arg(long)]
    pub allow_unencrypted: bool,
}

#[derive(Debug, Args)]
pub struct ClearArgs {
    /// The cache name, e.g. msal.cache
    pub name: String,

    /// Do not ask for confirmation
    #[arg(long, short)]
    pub yes: bool,

    /// How long to wait for the cache lock, in seconds
    #[arg(long, value_name = "SECONDS", default_value_t = 10)]
    pub wait: u64,
}
