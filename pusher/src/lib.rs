//! The pusher: drains partner queues and delivers each change to the partner's OCPI API,
//! acking a message only after the partner confirmed it.

pub mod mapping;
pub mod ocpi;
