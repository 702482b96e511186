//! Where inference time goes, per op type, on a real model and photo (native).
//!
//!     cargo run --release --example profile -- MODEL.onnx PHOTO.jpg [THREADS]

mod common;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [model_path, photo, rest @ ..] = args.as_slice() else {
        return Err("usage: profile MODEL.onnx PHOTO.jpg [THREADS]".into());
    };
    let threads = rest.first().map(|t| t.parse()).transpose()?.unwrap_or(1);
    cutout::set_threads(threads);
    let session = common::session_for(model_path)?;
    let image = cutout::decode(&std::fs::read(photo)?, cutout::DEFAULT_MAX_PIXELS)?;
    session.profile(&image)?; // warm-up
    let ops = session.profile(&image)?;
    let total: f64 = ops.iter().map(|o| o.seconds).sum();
    println!("{threads} thread(s), {total:.2} s in ops");
    for op in ops.iter().take(20) {
        println!(
            "{:>6.1}% {:>7.3} s {:>5} x {}",
            100.0 * op.seconds / total,
            op.seconds,
            op.calls,
            op.op
        );
    }
    Ok(())
}
