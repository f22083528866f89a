pub mod faults;
pub mod quality;
