//! Our kernels for wasm SIMD128: the ops' inner loops ([`winograd`], [`quantize`], [`maxpool`]:
//! each the generic kernel's arithmetic, several lanes at a time), and matrix-product kernels
//! offered to tract's kernel selection: tract-linalg collects kernels and dispatch tiers through
//! `inventory`, so these are registered beside tract's own and a tier ranked above tract's wasm
//! tier names them.
//!
//! - [`int8`]: i8 x i8 -> i32 (quantized models), 4x4, `i32x4.dot_i16x8_s`; bit-exact.
//! - [`f32`]: f32 (fp16 models, widened at load), 4x8, one broadcast load per row instead of
//!   tract's 8x8 tile, whose 16 accumulators do not fit x86's 16 vector registers.
//!
//! Both run tract's fused-op spec (bias, scales, activations, requantisation, stores) through the
//! scalar epilogue here, which is O(tile) against the O(tile x k) product.

pub(crate) mod f32;
pub(crate) mod int8;
pub(crate) mod maxpool;
pub(crate) mod quantize;
#[cfg(test)]
mod tests;
pub(crate) mod winograd;

use tract_linalg::isa::{Arch, IsaSet};
use tract_linalg::mmm::{FusedKerSpec, MatMatMul, OutputStoreKer, Query, RoundingPolicy, Suitable};
use tract_linalg::mmm_routines::MmmRoutine;
use tract_linalg::mmm_tiers::MmmTier;
use tract_linalg::{ScaleShiftAndRound, Scaler};
use tract_onnx::prelude::DatumType;

/// Our kernel for every matrix product of these accumulator types but the matrix-vector ones
/// (n = 1), where tract keeps its own choice.
fn prefer_ours(
    _isa: &IsaSet,
    accumulator: DatumType,
    query: &Query,
    _suitable: &[Suitable],
) -> Option<&'static str> {
    if query.n == Some(1) {
        return None;
    }
    match accumulator {
        DatumType::I32 => Some(int8::KERNEL_NAME),
        DatumType::F32 => Some(f32::KERNEL_NAME),
        _ => None,
    }
}

inventory::submit! { MmmRoutine { make: int8::make_kernel } }
inventory::submit! { MmmRoutine { make: f32::make_kernel } }
inventory::submit! {
    MmmTier {
        arch: Some(Arch::Wasm32Simd128),
        precedence: 2,
        name: "cutout-wasm",
        applies: |_| true,
        preferred: prefer_ours,
    }
}

/// wasm-ld drops an object file nothing references, and the registrations above with it: the
/// engine calls this before tract selects kernels.
pub(crate) fn ensure_registered() {
    std::hint::black_box((
        int8::make_kernel as fn() -> Box<dyn MatMatMul>,
        f32::make_kernel as fn() -> Box<dyn MatMatMul>,
        prefer_ours as fn(_, _, _, _) -> _,
    ));
}

/// One tile of accumulators, `tile[row][col]`.
pub(super) type Tile<T, const MR: usize, const NR: usize> = [[T; NR]; MR];

/// The accumulator arithmetic of tract's fused ops, as tract's wasm kernels compute it.
pub(super) trait Accumulator: Copy + Default + 'static {
    fn min(self, other: Self) -> Self;
    fn max(self, other: Self) -> Self;
    fn add(self, other: Self) -> Self;
    fn mul(self, other: Self) -> Self;
    fn sub(self, other: Self) -> Self;
    fn leaky_relu(self, alpha: Self) -> Self;
    /// Requantisation steps (integer accumulators only).
    fn shift_left(self, _shift: usize) -> Option<Self> {
        None
    }
    fn rounding_shift_right(self, _shift: usize, _policy: RoundingPolicy) -> Option<Self> {
        None
    }
    fn q_scale(self, _scaler: Scaler) -> Option<Self> {
        None
    }
    /// An element of another tensor of `item_size` bytes, as this type; None if unsupported.
    ///
    /// # Safety
    /// `ptr` points to such an element.
    unsafe fn read(ptr: *const u8, item_size: usize) -> Option<Self>;
    /// Stores as `item_size` bytes; false if unsupported.
    ///
    /// # Safety
    /// `ptr` points to such an element.
    unsafe fn write(self, ptr: *mut u8, item_size: usize) -> bool;
}

impl Accumulator for i32 {
    fn min(self, other: Self) -> Self {
        Ord::min(self, other)
    }
    fn max(self, other: Self) -> Self {
        Ord::max(self, other)
    }
    fn add(self, other: Self) -> Self {
        self.wrapping_add(other)
    }
    fn mul(self, other: Self) -> Self {
        self.wrapping_mul(other)
    }
    fn sub(self, other: Self) -> Self {
        self.wrapping_sub(other)
    }
    fn leaky_relu(self, alpha: Self) -> Self {
        if self > 0 {
            self
        } else {
            alpha.wrapping_mul(self)
        }
    }
    fn shift_left(self, shift: usize) -> Option<Self> {
        Some(self.q_shl(shift))
    }
    fn rounding_shift_right(self, shift: usize, policy: RoundingPolicy) -> Option<Self> {
        Some(self.q_shr(shift, policy))
    }
    fn q_scale(self, scaler: Scaler) -> Option<Self> {
        Some(ScaleShiftAndRound::q_scale(self, scaler))
    }
    unsafe fn read(ptr: *const u8, item_size: usize) -> Option<Self> {
        // SAFETY: the caller's pointer, read at the size it names.
        unsafe {
            match item_size {
                1 => Some(*(ptr as *const i8) as i32),
                4 => Some(*(ptr as *const i32)),
                _ => None,
            }
        }
    }
    unsafe fn write(self, ptr: *mut u8, item_size: usize) -> bool {
        // SAFETY: as in `read`.
        unsafe {
            match item_size {
                1 => *ptr = self as u8,
                4 => *(ptr as *mut i32) = self,
                _ => return false,
            }
        }
        true
    }
}

impl Accumulator for f32 {
    // wasm's min/max (NaN wins, -0 < +0), as tract's kernels get from f32x4.min/max.
    fn min(self, other: Self) -> Self {
        use std::arch::wasm32::*;
        f32x4_extract_lane::<0>(f32x4_min(f32x4_splat(self), f32x4_splat(other)))
    }
    fn max(self, other: Self) -> Self {
        use std::arch::wasm32::*;
        f32x4_extract_lane::<0>(f32x4_max(f32x4_splat(self), f32x4_splat(other)))
    }
    fn add(self, other: Self) -> Self {
        self + other
    }
    fn mul(self, other: Self) -> Self {
        self * other
    }
    fn sub(self, other: Self) -> Self {
        self - other
    }
    fn leaky_relu(self, alpha: Self) -> Self {
        if self > 0.0 {
            self
        } else {
            alpha * self
        }
    }
    unsafe fn read(ptr: *const u8, item_size: usize) -> Option<Self> {
        // SAFETY: the caller's pointer, read at the size it names.
        (item_size == 4).then(|| unsafe { *(ptr as *const f32) })
    }
    unsafe fn write(self, ptr: *mut u8, item_size: usize) -> bool {
        if item_size != 4 {
            return false;
        }
        // SAFETY: as in `read`.
        unsafe { *(ptr as *mut f32) = self };
        true
    }
}

fn map<T: Accumulator, const MR: usize, const NR: usize>(
    tile: &mut Tile<T, MR, NR>,
    f: impl Fn(T, usize, usize) -> T,
) {
    for (row, values) in tile.iter_mut().enumerate() {
        for (col, value) in values.iter_mut().enumerate() {
            *value = f(*value, row, col);
        }
    }
}

/// Like [`map`], for a step only some accumulator types have; false if `T` lacks it.
fn try_map<T: Accumulator, const MR: usize, const NR: usize>(
    tile: &mut Tile<T, MR, NR>,
    f: impl Fn(T) -> Option<T>,
) -> bool {
    for value in tile.iter_mut().flatten() {
        match f(*value) {
            Some(mapped) => *value = mapped,
            None => return false,
        }
    }
    true
}

fn element(store: &OutputStoreKer, row: usize, col: usize) -> *mut u8 {
    store.ptr.wrapping_offset(
        store.row_byte_stride * row as isize + store.col_byte_stride * col as isize,
    )
}

/// Adds A·B (`k`, packed panels, the kernel's packing index) into the tile; false if the
/// packing is not one the kernel has.
pub(super) type Product<T, const MR: usize, const NR: usize> =
    unsafe fn(&mut Tile<T, MR, NR>, usize, *const u8, *const u8, usize) -> bool;

/// Reads tract's fused spec for one tile; 0 on success, 1 for something the kernel cannot do.
///
/// # Safety
/// The spec comes from tract's matmul driver: its pointers cover MR rows / NR columns of
/// per-row / per-column data, tiles of MR x NR values at the given strides, and packed panels
/// of `k` steps.
pub(super) unsafe fn run_spec<T: Accumulator, const MR: usize, const NR: usize>(
    spec: &[FusedKerSpec<T>],
    product: Product<T, MR, NR>,
) -> isize {
    let mut tile: Tile<T, MR, NR> = [[T::default(); NR]; MR];
    let t = &mut tile;
    for op in spec {
        // SAFETY (all pointer reads and writes): see the function's contract.
        unsafe {
            match *op {
                FusedKerSpec::Done => break,
                FusedKerSpec::Clear => *t = [[T::default(); NR]; MR],
                FusedKerSpec::LoadTile(col_major, _) => {
                    map(t, |_, r, c| *col_major.add(c * MR + r))
                }
                FusedKerSpec::ScalarMin(s) => map(t, |v, _, _| v.min(s)),
                FusedKerSpec::ScalarMax(s) => map(t, |v, _, _| v.max(s)),
                FusedKerSpec::ScalarAdd(s) => map(t, |v, _, _| v.add(s)),
                FusedKerSpec::ScalarMul(s) => map(t, |v, _, _| v.mul(s)),
                FusedKerSpec::ScalarSub(s) => map(t, |v, _, _| s.sub(v)),
                FusedKerSpec::ScalarSubF(s) => map(t, |v, _, _| v.sub(s)),
                FusedKerSpec::LeakyRelu(alpha) => map(t, |v, _, _| v.leaky_relu(alpha)),
                FusedKerSpec::PerRowMin(p) => map(t, |v, r, _| v.min(*p.add(r))),
                FusedKerSpec::PerRowMax(p) => map(t, |v, r, _| v.max(*p.add(r))),
                FusedKerSpec::PerRowAdd(p) => map(t, |v, r, _| v.add(*p.add(r))),
                FusedKerSpec::PerRowMul(p) => map(t, |v, r, _| v.mul(*p.add(r))),
                FusedKerSpec::PerRowSub(p) => map(t, |v, r, _| (*p.add(r)).sub(v)),
                FusedKerSpec::PerRowSubF(p) => map(t, |v, r, _| v.sub(*p.add(r))),
                FusedKerSpec::PerColMin(p) => map(t, |v, _, c| v.min(*p.add(c))),
                FusedKerSpec::PerColMax(p) => map(t, |v, _, c| v.max(*p.add(c))),
                FusedKerSpec::PerColAdd(p) => map(t, |v, _, c| v.add(*p.add(c))),
                FusedKerSpec::PerColMul(p) => map(t, |v, _, c| v.mul(*p.add(c))),
                FusedKerSpec::PerColSub(p) => map(t, |v, _, c| (*p.add(c)).sub(v)),
                FusedKerSpec::PerColSubF(p) => map(t, |v, _, c| v.sub(*p.add(c))),
                FusedKerSpec::AddRowColProducts(rows, cols) => {
                    map(t, |v, r, c| v.add((*rows.add(r)).mul(*cols.add(c))))
                }
                FusedKerSpec::ShiftLeft(shift) => {
                    if !try_map(t, |v| v.shift_left(shift)) {
                        return 1;
                    }
                }
                FusedKerSpec::RoundingShiftRight(shift, policy) => {
                    if !try_map(t, |v| v.rounding_shift_right(shift, policy)) {
                        return 1;
                    }
                }
                FusedKerSpec::QScale(shift, policy, mult) => {
                    let scaler = Scaler::from_fuse_params(shift, policy, mult);
                    if !try_map(t, |v| v.q_scale(scaler)) {
                        return 1;
                    }
                }
                FusedKerSpec::AddUnicast(other) => {
                    for (row, values) in t.iter_mut().enumerate() {
                        for (col, value) in values.iter_mut().enumerate() {
                            let Some(x) = T::read(element(&other, row, col), other.item_size)
                            else {
                                return 1;
                            };
                            *value = value.add(x);
                        }
                    }
                }
                FusedKerSpec::Store(out) => {
                    for (row, values) in t.iter().enumerate() {
                        for (col, value) in values.iter().enumerate() {
                            if !value.write(element(&out, row, col), out.item_size) {
                                return 1;
                            }
                        }
                    }
                }
                FusedKerSpec::AddMatMul { k, pa, pb, packing } => {
                    if !product(t, k, pa, pb, packing) {
                        return 1;
                    }
                }
            }
        }
    }
    0
}
