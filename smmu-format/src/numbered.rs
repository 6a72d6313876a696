//! [`numbered!`]: an enum whose variants are the architecture's numbers (event
//! numbers, command opcodes), with the conversions both ways written once.

/// Declares a `#[repr(u8)]` enum whose variants are `Name = number`, with `code()` and
/// `from_code()` (`None` for numbers not listed).
macro_rules! numbered {
    (
        $(#[$meta:meta])*
        $vis:vis enum $name:ident {
            $($(#[$vmeta:meta])* $variant:ident = $code:literal,)+
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        #[repr(u8)]
        $vis enum $name {
            $($(#[$vmeta])* $variant = $code,)+
        }

        impl $name {
            /// The architectural number.
            pub const fn code(self) -> u8 {
                self as u8
            }

            /// The variant numbered `code`; `None` for numbers not defined here.
            pub const fn from_code(code: u8) -> Option<Self> {
                match code {
                    $($code => Some($name::$variant),)+
                    _ => None,
                }
            }
        }
    };
}

pub(crate) use numbered;
