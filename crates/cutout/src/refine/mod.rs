//! Edge refinement, between the model and rendering (on unless `Options::refine` is off):
//! - [`upsample`] brings the model's mask to the photo's size along the photo's own edges
//!   instead of as a bilinear blur of the model's grid;
//! - [`estimate_foreground`] gives semi-transparent pixels (hair, fur, motion blur) the
//!   subject's colour instead of a mix with the old background, which otherwise shows as a halo
//!   on any new backdrop.

mod foreground;
#[cfg(test)]
mod tests;
mod upsample;

pub use foreground::estimate_foreground;
pub use upsample::upsample;

/// A value in [0, 255] rounded to the nearest level: `+ 0.5` and truncation, since `f32::round`
/// is a libm call on baseline x86_64, where it took a sizeable share of both passes.
fn nearest_level(value: f32) -> u8 {
    (value + 0.5) as u8
}
