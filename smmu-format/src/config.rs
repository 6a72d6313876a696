//! What a caller chooses: granule, input and output sizes, the contiguous hint.

use crate::geometry::Granule;
use pgtable_core::{ConfigError, Error};

/// The configuration of an Arm table, either stage.
///
/// Valid: `granule` 4096, 16384 or 65536; `ias` and `oas` from 32 to 48 bits, up to 52
/// with the 64K granule (52-bit addresses need FEAT_LVA / FEAT_LPA, which only the 64K
/// granule has without LPA2). The contiguous hint is off by default, so that default
/// tables are bit for bit what Linux's io-pgtable-arm writes.
///
/// ```
/// use smmu_format::ArmConfig;
/// let cfg = ArmConfig::new(65536, 48, 52).with_contiguous_hint(true);
/// assert_eq!(cfg.granule, 65536);
/// assert_eq!(ArmConfig::default(), ArmConfig::new(4096, 48, 48));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ArmConfig {
    /// Translation granule in bytes: 4096, 16384 or 65536.
    pub granule: u64,
    /// Input address bits (IOVA at stage 1, IPA at stage 2).
    pub ias: u32,
    /// Output address bits; CD.IPS / STE.S2PS is the smallest encoding at least this.
    pub oas: u32,
    /// Set the contiguous hint on whole aligned groups that one map covers (§3.2).
    pub contiguous_hint: bool,
    /// Stage 1: HAD (the CD's hierarchical attribute disable) for this table, so
    /// walks ignore APTable / UXNTable / PXNTable (§3.6). Stage 2 has none.
    pub hierarchical_disabled: bool,
}

impl Default for ArmConfig {
    /// 4K granule, 48-bit input and output, no contiguous hint.
    fn default() -> Self {
        ArmConfig::new(4096, 48, 48)
    }
}

impl ArmConfig {
    /// A configuration without the contiguous hint.
    pub const fn new(granule: u64, ias: u32, oas: u32) -> Self {
        ArmConfig {
            granule,
            ias,
            oas,
            contiguous_hint: false,
            hierarchical_disabled: false,
        }
    }

    /// The same configuration with the CD's HAD bit (hierarchical attributes
    /// ignored) set or clear.
    pub const fn with_hierarchical_disabled(mut self, had: bool) -> Self {
        self.hierarchical_disabled = had;
        self
    }

    /// The same configuration with the contiguous hint on or off.
    pub const fn with_contiguous_hint(mut self, on: bool) -> Self {
        self.contiguous_hint = on;
        self
    }

    /// Checks the configuration and returns its granule.
    ///
    /// # Errors
    /// [`Error::BadConfig`] naming the first field out of range.
    pub(crate) fn validate(&self) -> Result<Granule, Error> {
        let granule =
            Granule::from_bytes(self.granule).ok_or(ConfigError::Granule(self.granule))?;
        // 52-bit addresses need the 64K granule (no FEAT_LPA2).
        let max = if granule == Granule::K64 { 52 } else { 48 };
        for bits in [self.ias, self.oas] {
            if bits > max && bits <= 52 {
                return Err(ConfigError::NeedsGranule {
                    bits,
                    granule: Granule::K64.bytes(),
                }
                .into());
            }
        }
        if !(32..=max).contains(&self.ias) {
            return Err(ConfigError::InputSize {
                bits: self.ias,
                min: 32,
                max,
            }
            .into());
        }
        if !(32..=max).contains(&self.oas) {
            return Err(ConfigError::OutputSize {
                bits: self.oas,
                min: 32,
                max,
            }
            .into());
        }
        Ok(granule)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn out_of_range_configurations_are_refused() {
        let bad = [
            ArmConfig::new(8192, 48, 48),
            ArmConfig::new(0, 48, 48),
            ArmConfig::new(4096, 31, 48),
            ArmConfig::new(4096, 48, 31),
            ArmConfig::new(4096, 52, 52),
            ArmConfig::new(16384, 48, 52),
            ArmConfig::new(4096, 49, 48),
            ArmConfig::new(65536, 53, 52),
            ArmConfig::new(65536, 48, 53),
        ];
        for cfg in bad {
            assert!(
                matches!(cfg.validate(), Err(Error::BadConfig(_))),
                "{cfg:?}"
            );
        }
        for cfg in [
            ArmConfig::new(4096, 32, 32),
            ArmConfig::new(16384, 48, 48),
            ArmConfig::new(65536, 52, 52),
            ArmConfig::new(65536, 48, 50),
        ] {
            assert!(cfg.validate().is_ok(), "{cfg:?}");
        }
    }
}
