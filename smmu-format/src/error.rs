//! [`DecodeError`]: why an SMMU structure, a lookup through the stream or CD table, or a
//! command is not one the SMMU accepts, and which event (or command error) it raises.

use crate::event::EventId;
use std::fmt;

/// The SMMU structures this crate decodes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Structure {
    /// The STRTAB_BASE_CFG register value.
    StreamTableConfig,
    /// A stream table entry.
    StreamTableEntry,
    /// A context descriptor.
    ContextDescriptor,
    /// An event record.
    EventRecord,
    /// A command.
    Command,
}

impl Structure {
    /// The name, as messages print it.
    pub const fn name(self) -> &'static str {
        match self {
            Structure::StreamTableConfig => "STRTAB_BASE_CFG",
            Structure::StreamTableEntry => "STE",
            Structure::ContextDescriptor => "CD",
            Structure::EventRecord => "event record",
            Structure::Command => "command",
        }
    }

    /// The event an ILLEGAL or invalid structure of this kind raises: C_BAD_STE,
    /// C_BAD_CD; none for registers, records and commands.
    pub const fn event(self) -> Option<EventId> {
        match self {
            Structure::StreamTableEntry => Some(EventId::CBadSte),
            Structure::ContextDescriptor => Some(EventId::CBadCd),
            _ => None,
        }
    }

    /// The error for an ILLEGAL `value` of `field`.
    pub(crate) const fn illegal(self, field: &'static str, value: u64) -> DecodeError {
        DecodeError::Illegal {
            structure: self,
            field,
            value,
        }
    }
}

impl fmt::Display for Structure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The command-queue error the SMMU reports in CMDQ_CONS.ERR (`[30:24]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum CommandError {
    /// CERROR_NONE.
    None = 0,
    /// CERROR_ILL: an unknown opcode or an ILLEGAL field.
    Ill = 1,
    /// CERROR_ABT: an external abort fetching the command.
    Abt = 2,
    /// CERROR_ATC_INV_SYNC: an ATC invalidation timed out before a CMD_SYNC.
    AtcInvSync = 3,
}

/// Why an SMMU structure, lookup or command does not decode.
///
/// [`DecodeError::event`] is the event the SMMU records for it and
/// [`DecodeError::command_error`] the command-queue error, so a walker or command
/// queue can report it as the hardware would.
///
/// ```
/// use smmu_format::{DecodeError, EventId, StreamTableEntry};
/// let err = StreamTableEntry::decode([0; 8]).unwrap_err(); // V = 0
/// assert_eq!(err.event(), Some(EventId::CBadSte));
/// assert_eq!(err.to_string(), "STE: V is 0 (C_BAD_STE (0x04))");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// The structure's V bit is clear.
    #[error("{structure}: V is 0{}", event_suffix(structure.event()))]
    Invalid {
        /// Which structure.
        structure: Structure,
    },
    /// A field holds a value the architecture makes ILLEGAL (or reserves).
    #[error("{structure}: {field} = {value:#x} is ILLEGAL{}", event_suffix(structure.event()))]
    Illegal {
        /// Which structure.
        structure: Structure,
        /// The field, by its spec name.
        field: &'static str,
        /// Its value.
        value: u64,
    },
    /// The StreamID is outside the stream table, or its L1 descriptor has no (or too
    /// small an) L2 table (C_BAD_STREAMID).
    #[error("StreamID {0:#x} is outside the stream table (C_BAD_STREAMID)")]
    BadStreamId(u32),
    /// The SubstreamID is outside the CD table or not allowed, or its L1 CD descriptor
    /// is not valid (C_BAD_SUBSTREAMID).
    #[error("SubstreamID {0:#x} is outside the CD table (C_BAD_SUBSTREAMID)")]
    BadSubstreamId(u32),
    /// A transaction without SubstreamID on a stream whose STE terminates them
    /// (S1DSS = 0b00, F_STREAM_DISABLED).
    #[error("transactions without SubstreamID are disabled (F_STREAM_DISABLED)")]
    StreamDisabled,
    /// A command opcode the SMMU does not define (CERROR_ILL).
    #[error("command opcode {0:#04x} is not defined (CERROR_ILL)")]
    UnknownOpcode(u8),
    /// An event record's EventID is not one [`EventId`] defines.
    #[error("event number {0:#04x} is not defined")]
    UnknownEvent(u8),
}

/// " (EVENT (0x..))" when there is one.
fn event_suffix(event: Option<EventId>) -> String {
    event.map_or_else(String::new, |e| format!(" ({e})"))
}

impl DecodeError {
    /// The event the SMMU records for this error, if it is one a configuration or
    /// lookup raises.
    pub const fn event(&self) -> Option<EventId> {
        match *self {
            DecodeError::Invalid { structure } | DecodeError::Illegal { structure, .. } => {
                structure.event()
            }
            DecodeError::BadStreamId(_) => Some(EventId::CBadStreamId),
            DecodeError::BadSubstreamId(_) => Some(EventId::CBadSubstreamId),
            DecodeError::StreamDisabled => Some(EventId::FStreamDisabled),
            DecodeError::UnknownOpcode(_) | DecodeError::UnknownEvent(_) => None,
        }
    }

    /// The command-queue error, for errors decoding a command: CERROR_ILL.
    pub const fn command_error(&self) -> Option<CommandError> {
        match *self {
            DecodeError::UnknownOpcode(_)
            | DecodeError::Illegal {
                structure: Structure::Command,
                ..
            } => Some(CommandError::Ill),
            _ => None,
        }
    }
}
