/** `<cutout-image src="photo.jpg" model="isnet-fp16" sha256="..." output="png" background="#fff" crop>`; `no-refine` turns edge refinement off. */
export class CutoutImage extends HTMLElement {}
declare global {
  interface HTMLElementTagNameMap {
    'cutout-image': CutoutImage;
  }
}
