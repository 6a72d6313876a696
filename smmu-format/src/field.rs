//! [`Bits`]: one field of a 64-bit structure word, named by its inclusive bit range as
//! the SMMU specification and docs/formats.md write it (`dw0[51:6]`).

use crate::descriptor::mask;

/// The field `h:l` of a 64-bit word.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Bits {
    h: u32,
    l: u32,
}

impl Bits {
    /// Bits `h` down to `l`.
    pub(crate) const fn new(h: u32, l: u32) -> Self {
        Bits { h, l }
    }

    /// The single bit `n`.
    pub(crate) const fn bit(n: u32) -> Self {
        Bits { h: n, l: n }
    }

    /// The field's bits in place.
    pub(crate) const fn mask(self) -> u64 {
        mask(self.h, self.l)
    }

    /// The field of `word`, shifted down.
    pub(crate) const fn get(self, word: u64) -> u64 {
        (word & self.mask()) >> self.l
    }

    /// Whether a one-bit field of `word` is set.
    pub(crate) const fn is_set(self, word: u64) -> bool {
        self.get(word) != 0
    }

    /// `value` in place; bits beyond the field's width are dropped.
    pub(crate) const fn put(self, value: u64) -> u64 {
        (value << self.l) & self.mask()
    }

    /// `on` in place (a one-bit field).
    pub(crate) const fn flag(self, on: bool) -> u64 {
        self.put(on as u64)
    }

    /// The bits of `word` in place (not shifted): addresses stored at their own bit
    /// positions.
    pub(crate) const fn of(self, word: u64) -> u64 {
        word & self.mask()
    }
}

/// The bits of each of `words` outside the named fields `named`: what a structure
/// type keeps as it is so that decoding then encoding gives back the same words.
pub(crate) const fn unnamed<const N: usize>(words: [u64; N], named: &[u64; N]) -> [u64; N] {
    let mut other = [0; N];
    let mut i = 0;
    while i < N {
        other[i] = words[i] & !named[i];
        i += 1;
    }
    other
}

/// `words` with the bits of `other` outside the named fields `named` added.
pub(crate) const fn with_unnamed<const N: usize>(
    mut words: [u64; N],
    other: &[u64; N],
    named: &[u64; N],
) -> [u64; N] {
    let mut i = 0;
    while i < N {
        words[i] |= other[i] & !named[i];
        i += 1;
    }
    words
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields() {
        let f = Bits::new(7, 4);
        assert_eq!(f.put(0x1f), 0xf0);
        assert_eq!(f.get(0xabcd), 0xc);
        assert_eq!(f.of(0xabcd), 0xc0);
        assert!(Bits::bit(63).is_set(1 << 63));
        assert_eq!(Bits::bit(3).flag(true), 8);
    }

    #[test]
    fn unnamed_bits() {
        let named = [0xff, 0];
        assert_eq!(unnamed([0x1234, 5], &named), [0x1200, 5]);
        assert_eq!(with_unnamed([0x34, 0], &[0x12ff, 5], &named), [0x1234, 5]);
    }
}
