//! What the Keychain's answers mean for the cache: its `OSStatus` codes (Security/SecBase.h)
//! as [`StoreFailure`]s. Pure data, compiled for the macOS
//! backend and for the unit tests on every platform.

use super::secret_store::{StoreError, StoreFailure};

/// What a Keychain `OSStatus` (Security/SecBase.h) means for the cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum KeychainStatus {
    /// `errSecItemNotFound`: no such item; a load gives `None`, a delete `false`.
    NotFound,
    /// A failure of this kind.
    Failed(StoreFailure),
}

/// `errSecDiskFull`: the disk is full.
pub(crate) const ERR_SEC_DISK_FULL: i32 = -34;
/// `errSecWrPerm`: write permission denied.
pub(crate) const ERR_SEC_WR_PERM: i32 = -61;
/// `errSecUserCanceled`: the user dismissed a prompt.
pub(crate) const ERR_SEC_USER_CANCELED: i32 = -128;
/// `errSecNotAvailable`: no keychain is available.
pub(crate) const ERR_SEC_NOT_AVAILABLE: i32 = -25291;
/// `errSecReadOnly`: the keychain is read-only.
pub(crate) const ERR_SEC_READ_ONLY: i32 = -25292;
/// `errSecAuthFailed`: the user name or passphrase was wrong, or access was refused.
pub(crate) const ERR_SEC_AUTH_FAILED: i32 = -25293;
/// `errSecNoSuchKeychain`: the keychain does not exist.
pub(crate) const ERR_SEC_NO_SUCH_KEYCHAIN: i32 = -25294;
/// `errSecItemNotFound`: no such item.
pub(crate) const ERR_SEC_ITEM_NOT_FOUND: i32 = -25300;
/// `errSecDataTooLarge`: the data is too large.
pub(crate) const ERR_SEC_DATA_TOO_LARGE: i32 = -25302;
/// `errSecNoDefaultKeychain`: there is no default keychain.
pub(crate) const ERR_SEC_NO_DEFAULT_KEYCHAIN: i32 = -25307;
/// `errSecInteractionNotAllowed`: a prompt was needed (a locked keychain, an access list
/// that asks) and none may be shown, e.g. over SSH.
pub(crate) const ERR_SEC_INTERACTION_NOT_ALLOWED: i32 = -25308;
/// `errSecInteractionRequired`: as above, interaction was required.
pub(crate) const ERR_SEC_INTERACTION_REQUIRED: i32 = -25315;
/// `errSecMissingEntitlement`: the process lacks the entitlement for the keychain.
pub(crate) const ERR_SEC_MISSING_ENTITLEMENT: i32 = -34018;
/// `errSecQuotaExceeded`: a quota was exceeded.
pub(crate) const ERR_SEC_QUOTA_EXCEEDED: i32 = -67596;

impl KeychainStatus {
    /// The meaning of a failed call's status `code`.
    pub(crate) fn of(code: i32) -> KeychainStatus {
        KeychainStatus::Failed(match code {
            ERR_SEC_ITEM_NOT_FOUND => return KeychainStatus::NotFound,
            ERR_SEC_INTERACTION_NOT_ALLOWED | ERR_SEC_INTERACTION_REQUIRED => StoreFailure::Locked,
            ERR_SEC_USER_CANCELED
            | ERR_SEC_AUTH_FAILED
            | ERR_SEC_READ_ONLY
            | ERR_SEC_WR_PERM
            | ERR_SEC_MISSING_ENTITLEMENT => StoreFailure::Denied,
            ERR_SEC_NOT_AVAILABLE | ERR_SEC_NO_SUCH_KEYCHAIN | ERR_SEC_NO_DEFAULT_KEYCHAIN => {
                StoreFailure::Unavailable
            }
            ERR_SEC_DATA_TOO_LARGE => StoreFailure::TooLarge,
            ERR_SEC_DISK_FULL | ERR_SEC_QUOTA_EXCEEDED => StoreFailure::Full,
            _ => StoreFailure::Other,
        })
    }
}

/// Splits a Keychain call's result into found, not found ([`KeychainStatus::NotFound`])
/// and a [`StoreError`] of the failure's kind, with the call's error as its source.
/// `code` reads the `OSStatus` of an error.
pub(crate) fn found<T, E>(
    result: Result<T, E>,
    code: impl Fn(&E) -> i32,
) -> Result<Option<T>, StoreError>
where
    E: std::error::Error + Send + Sync + 'static,
{
    match result {
        Ok(value) => Ok(Some(value)),
        Err(err) => match KeychainStatus::of(code(&err)) {
            KeychainStatus::NotFound => Ok(None),
            KeychainStatus::Failed(failure) => Err(StoreError::new(failure, err)),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ErrorKind;

    #[test]
    fn status_codes() {
        use KeychainStatus::{Failed, NotFound};
        assert_eq!(KeychainStatus::of(-25300), NotFound);
        assert_eq!(KeychainStatus::of(-25308), Failed(StoreFailure::Locked));
        assert_eq!(KeychainStatus::of(-25315), Failed(StoreFailure::Locked));
        assert_eq!(KeychainStatus::of(-25293), Failed(StoreFailure::Denied));
        assert_eq!(KeychainStatus::of(-128), Failed(StoreFailure::Denied));
        assert_eq!(KeychainStatus::of(-34018), Failed(StoreFailure::Denied));
        assert_eq!(
            KeychainStatus::of(-25307),
            Failed(StoreFailure::Unavailable)
        );
        assert_eq!(
            KeychainStatus::of(-25291),
            Failed(StoreFailure::Unavailable)
        );
        assert_eq!(KeychainStatus::of(-25302), Failed(StoreFailure::TooLarge));
        assert_eq!(KeychainStatus::of(-34), Failed(StoreFailure::Full));
        assert_eq!(KeychainStatus::of(-67596), Failed(StoreFailure::Full));
        assert_eq!(KeychainStatus::of(-61), Failed(StoreFailure::Denied));
        assert_eq!(KeychainStatus::of(-50), Failed(StoreFailure::Other));
        assert_eq!(
            StoreFailure::Locked.kind(),
            ErrorKind::AccessDenied,
            "a locked keychain is access denied"
        );
    }

    #[test]
    fn results_split_into_found_missing_and_failures() {
        #[derive(Debug)]
        struct Status(i32);
        impl std::fmt::Display for Status {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                write!(f, "status {}", self.0)
            }
        }
        impl std::error::Error for Status {}
        let code = |s: &Status| s.0;
        assert_eq!(found(Ok::<_, Status>(7), code).expect("ok"), Some(7));
        assert_eq!(found(Err::<u8, _>(Status(-25300)), code).expect("ok"), None);
        let err = found(Err::<u8, _>(Status(-25308)), code).expect_err("locked");
        assert_eq!(err.failure(), StoreFailure::Locked);
        assert_eq!(
            std::error::Error::source(&err).map(ToString::to_string),
            Some("status -25308".to_owned())
        );
    }
}
