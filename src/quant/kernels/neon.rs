use super::Kernels;
pub(super) fn kernels() -> Kernels {
    Kernels::SCALAR
}
