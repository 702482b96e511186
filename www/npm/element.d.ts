/** `<cutout-image src="photo.jpg" model="isnet-fp16" sha256="..." output="png" background="#fff" crop>` */
export class CutoutImage extends HTMLElement {}
declare global {
  interface HTMLElementTagNameMap {
    'cutout-image': CutoutImage;
  }
}
