//! Shared test helpers: two small formats whose leaf sizes are not a level's span, and
//! memories that misbehave on purpose.
#![allow(dead_code)]

pub mod amdv1;
pub mod memories;
pub mod napot;
