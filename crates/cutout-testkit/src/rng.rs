//! The one seeded generator every suite uses: the same test data on every run and every target.

/// xorshift64: tiny, fast and deterministic. Not for anything but test data.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator seeded with `seed` (zero is replaced: xorshift would stay at zero forever).
    pub fn new(seed: u64) -> Rng {
        Rng(if seed == 0 {
            0x9e37_79b9_7f4a_7c15
        } else {
            seed
        })
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    pub fn next_u32(&mut self) -> u32 {
        (self.next_u64() >> 32) as u32
    }

    pub fn byte(&mut self) -> u8 {
        (self.next_u64() >> 56) as u8
    }

    /// A value in `low..=high`.
    pub fn in_range(&mut self, low: i32, high: i32) -> i32 {
        let span = (high as i64 - low as i64 + 1) as u64;
        (low as i64 + (self.next_u64() % span) as i64) as i32
    }

    /// An index into a collection of `len` items (`len` > 0).
    pub fn index(&mut self, len: usize) -> usize {
        (self.next_u64() % len as u64) as usize
    }

    /// One of `items` (not empty).
    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.index(items.len())]
    }

    /// A float in `[-1, 1]`, in steps of 1/1000 (exactly representable sums stay small).
    pub fn unit(&mut self) -> f32 {
        self.in_range(-1000, 1000) as f32 / 1000.0
    }

    /// `len` random bytes.
    pub fn bytes(&mut self, len: usize) -> Vec<u8> {
        (0..len).map(|_| self.byte()).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::Rng;

    #[test]
    fn the_same_seed_gives_the_same_stream_and_ranges_hold() {
        let (mut a, mut b) = (Rng::new(7), Rng::new(7));
        let first: Vec<u64> = (0..8).map(|_| a.next_u64()).collect();
        assert_eq!(first, (0..8).map(|_| b.next_u64()).collect::<Vec<_>>());
        assert_ne!(first[0], first[1]);
        let mut r = Rng::new(0);
        for _ in 0..10_000 {
            let v = r.in_range(-255, 255);
            assert!((-255..=255).contains(&v));
            assert!((-1.0..=1.0).contains(&r.unit()));
        }
    }
}
