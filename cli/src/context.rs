//! Where the caches are: the directory, the keyring profile and the bus, from the global
//! options, with the Azure SDK defaults.

use std::path::PathBuf;

use identity_cache_persistence::{KeyringProfile, default_directory, lock_path_for, validate_name};

use crate::{
    cli::Global,
    exit::{Code, Failure},
};

/// What every subcommand works on.
#[derive(Debug, Clone)]
pub struct Context {
    pub dir: PathBuf,
    pub profile: KeyringProfile,
    /// `None`: the session bus of the environment.
    pub dbus_address: Option<String>,
    /// Whether the kernel keyring stands in where no Secret Service is reachable, as
    /// `persistence_for` has it by default.
    pub kernel_keyring: bool,
}

impl Context {
    pub fn from_global(global: &Global) -> Result<Self, Failure> {
        let dir = match &global.dir {
            Some(dir) => dir.clone(),
            None => default_directory()?,
        };
        Ok(Context {
            dir,
            profile: global.profile.into(),
            dbus_address: global.dbus_address.clone(),
            kernel_keyring: !global.no_kernel_keyring,
        })
    }

    /// The path of the cache (file or marker) `name`, once the name is acceptable.
    pub fn cache_path(&self, name: &str) -> Result<PathBuf, Failure> {
        validate_name(name).map_err(|e| Failure::new(Code::Usage, e.to_string()))?;
        Ok(self.dir.join(name))
    }

    /// The MSAL lock file of the cache `name`.
    pub fn lock_path(&self, name: &str) -> Result<PathBuf, Failure> {
        Ok(lock_path_for(&self.cache_path(name)?))
    }

    /// The bus as people read it.
    pub fn bus(&self) -> &str {
        self.dbus_address.as_deref().unwrap_or("the session bus")
    }
}
