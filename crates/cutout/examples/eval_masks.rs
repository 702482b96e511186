//! What `make eval` measures, from one inference per photo: for each PHOTO it writes
//! `<n>.raw.png` (the reference pipeline's mask), `<n>.refined.png` (the refined mask) and
//! `<n>.cutout.png` (the refined cutout, with its estimated foreground colours) into OUT_DIR,
//! `<n>` being the photo's index on the command line.
//!
//!     cargo run --release --features multithread --example eval_masks -- MODEL.onnx OUT_DIR PHOTO...

use cutout::image_io;

mod common;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [model_path, out_dir, photos @ ..] = args.as_slice() else {
        return Err("usage: eval_masks MODEL.onnx OUT_DIR PHOTO...".into());
    };
    let session = common::session_for(model_path)?;
    let out = std::path::Path::new(out_dir);
    for (n, photo) in photos.iter().enumerate() {
        let image = cutout::decode(&std::fs::read(photo)?, cutout::DEFAULT_MAX_PIXELS)?;
        let mask = session.model_mask(&image, &mut |_| {})?;
        let raw = mask.alpha(&image, false);
        let refined = mask.alpha(&image, true);
        let mut coloured = image.clone();
        cutout::refine::estimate_foreground(&mut coloured, &refined);
        let png = cutout::OutputFormat::Png;
        std::fs::write(
            out.join(format!("{n}.raw.png")),
            image_io::encode_gray(&raw, png)?,
        )?;
        std::fs::write(
            out.join(format!("{n}.refined.png")),
            image_io::encode_gray(&refined, png)?,
        )?;
        std::fs::write(
            out.join(format!("{n}.cutout.png")),
            image_io::encode_rgba(&coloured, png)?,
        )?;
    }
    Ok(())
}
