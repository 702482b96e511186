//! A JPEG's entropy-coded data walked symbol by symbol (no pixels computed) to prove it is whole:
//! every scan holds every block its frame header promises and the file ends with its end marker.
//! Decoders (ours included) fill missing blocks with flat grey instead of failing, so a file cut
//! short (or cut and closed with an end marker) would otherwise be processed as if it were whole.

use crate::error::Error;

/// Why the walk stopped.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Verdict {
    Whole,
    /// A scan's data stops before its last block, or the file ends before its end marker.
    EndsEarly,
    /// A code that is in no Huffman table: the data is damaged.
    Damaged(&'static str),
    /// Something this walk does not model (no Huffman tables given, no height in the frame
    /// header): no verdict, the decoder has the last word.
    Unknown,
}

impl Verdict {
    pub(super) fn into_result(self) -> Result<(), Error> {
        match self {
            Verdict::Whole | Verdict::Unknown => Ok(()),
            Verdict::EndsEarly => Err(super::ends_early()),
            Verdict::Damaged(what) => Err(Error::CorruptImage {
                detail: format!("the JPEG data is damaged ({what})"),
            }),
        }
    }
}

#[derive(Clone, Default)]
struct Table {
    /// Codes of up to `FAST_BITS` bits: (length << 8) | symbol, 0 where a longer code starts.
    fast: Vec<u16>,
    /// Canonical decoding for longer codes: per length, the largest code (-1 for none), the
    /// first code and the index of its symbol.
    max_code: [i32; 17],
    first_code: [i32; 17],
    first_index: [usize; 17],
    symbols: Vec<u8>,
}

const FAST_BITS: u32 = 9;

impl Table {
    fn new(counts: &[u8; 16], symbols: Vec<u8>) -> Table {
        let mut table = Table {
            fast: vec![0; 1 << FAST_BITS],
            max_code: [-1; 17],
            first_code: [0; 17],
            first_index: [0; 17],
            symbols,
        };
        let (mut code, mut index) = (0i32, 0usize);
        for length in 1..=16 {
            let count = counts[length - 1] as usize;
            table.first_code[length] = code;
            table.first_index[length] = index;
            for _ in 0..count {
                if length as u32 <= FAST_BITS && index < table.symbols.len() {
                    let shift = FAST_BITS - length as u32;
                    let start = (code as usize) << shift;
                    let entry = ((length as u16) << 8) | table.symbols[index] as u16;
                    for slot in table.fast.iter_mut().skip(start).take(1 << shift) {
                        *slot = entry;
                    }
                }
                code += 1;
                index += 1;
            }
            if count > 0 {
                table.max_code[length] = code - 1;
            }
            code <<= 1;
        }
        table
    }
}

/// Bits of one scan's entropy-coded data: byte stuffing undone, stopped at the next marker.
struct Bits<'a> {
    data: &'a [u8],
    pos: usize,
    acc: u64,
    count: u32,
    /// Where the marker that ends this stretch of data starts (its 0xFF), once reached.
    marker: Option<usize>,
}

/// The data ran out (a marker or the end of the file) before the symbol did.
struct Short;

impl<'a> Bits<'a> {
    fn new(data: &'a [u8], pos: usize) -> Bits<'a> {
        Bits {
            data,
            pos,
            acc: 0,
            count: 0,
            marker: None,
        }
    }

    fn fill(&mut self) {
        while self.count <= 56 && self.marker.is_none() && self.pos < self.data.len() {
            let byte = self.data[self.pos];
            if byte == 0xFF {
                match self.data.get(self.pos + 1) {
                    Some(0x00) => self.pos += 2,
                    // Fill bytes before a marker.
                    Some(0xFF) => {
                        self.pos += 1;
                        continue;
                    }
                    Some(_) => {
                        self.marker = Some(self.pos);
                        return;
                    }
                    None => {
                        self.pos += 1;
                        return;
                    }
                }
            } else {
                self.pos += 1;
            }
            self.acc = (self.acc << 8) | byte as u64;
            self.count += 8;
        }
    }

    fn bits(&mut self, n: u32) -> Result<u32, Short> {
        if n == 0 {
            return Ok(0);
        }
        if self.count < n {
            self.fill();
            if self.count < n {
                return Err(Short);
            }
        }
        self.count -= n;
        Ok(((self.acc >> self.count) & ((1u64 << n) - 1)) as u32)
    }

    fn symbol(&mut self, table: &Table) -> Result<Result<u8, &'static str>, Short> {
        if self.count < 16 {
            self.fill();
        }
        if self.count >= FAST_BITS {
            let peek = (self.acc >> (self.count - FAST_BITS)) as usize & ((1 << FAST_BITS) - 1);
            let entry = table.fast[peek];
            if entry != 0 {
                self.count -= (entry >> 8) as u32;
                return Ok(Ok(entry as u8));
            }
        }
        let mut code = 0i32;
        for length in 1..=16 {
            code = (code << 1) | self.bits(1)? as i32;
            if code <= table.max_code[length] {
                let index = table.first_index[length] + (code - table.first_code[length]) as usize;
                return Ok(table
                    .symbols
                    .get(index)
                    .copied()
                    .ok_or("a Huffman table is shorter than its counts"));
            }
        }
        Ok(Err("a code that is in no Huffman table"))
    }

    /// Drops the padding bits and moves past a restart marker; false if the next thing is not one.
    fn restart(&mut self) -> bool {
        self.fill();
        match self.marker {
            Some(at) if matches!(self.data.get(at + 1), Some(0xD0..=0xD7)) => {
                self.pos = at + 2;
                self.marker = None;
                self.acc = 0;
                self.count = 0;
                true
            }
            _ => false,
        }
    }

    /// Where the marker after the scan's data starts, or `None` if the file ends first.
    fn next_marker(&mut self) -> Option<usize> {
        while self.marker.is_none() && self.pos < self.data.len() {
            self.count = 0;
            self.fill();
        }
        self.marker
    }
}

struct Component {
    id: u8,
    h: usize,
    v: usize,
    /// Blocks across and down when the component is coded alone (non-interleaved).
    blocks_wide: usize,
    blocks_high: usize,
    /// Progressive only: which coefficients of each block are already non-zero (one bit each).
    nonzero: Vec<u64>,
}

struct Frame {
    progressive: bool,
    width: usize,
    height: usize,
    components: Vec<Component>,
    h_max: usize,
    v_max: usize,
}

fn be16(b: &[u8], at: usize) -> usize {
    u16::from_be_bytes([b[at], b[at + 1]]) as usize
}

/// Walks the whole file: every marker segment, and every scan's data through its last block.
pub(super) fn check(bytes: &[u8]) -> Verdict {
    let mut dc_tables: [Option<Table>; 4] = Default::default();
    let mut ac_tables: [Option<Table>; 4] = Default::default();
    let mut frame: Option<Frame> = None;
    let mut restart_interval = 0usize;
    let mut scans = 0;
    let mut at = 2;
    loop {
        while bytes.get(at) == Some(&0xFF) && bytes.get(at + 1) == Some(&0xFF) {
            at += 1;
        }
        if at + 2 > bytes.len() {
            return Verdict::EndsEarly;
        }
        if bytes[at] != 0xFF {
            return Verdict::Damaged("bytes where a marker should be");
        }
        let marker = bytes[at + 1];
        if matches!(marker, 0x01 | 0xD0..=0xD8) {
            at += 2;
            continue;
        }
        if marker == 0xD9 {
            return if scans > 0 {
                Verdict::Whole
            } else {
                Verdict::EndsEarly
            };
        }
        if at + 4 > bytes.len() {
            return Verdict::EndsEarly;
        }
        let length = be16(bytes, at + 2);
        let end = at + 2 + length;
        if length < 2 {
            return Verdict::Damaged("a segment with an impossible length");
        }
        if end > bytes.len() {
            return Verdict::EndsEarly;
        }
        let segment = &bytes[at + 4..end];
        match marker {
            0xC4 => {
                let mut s = segment;
                while s.len() >= 17 {
                    let (class, id) = (s[0] >> 4, (s[0] & 15) as usize);
                    let counts: [u8; 16] = s[1..17].try_into().expect("16 bytes");
                    let total: usize = counts.iter().map(|&c| c as usize).sum();
                    if id > 3 || s.len() < 17 + total {
                        return Verdict::Damaged("a malformed Huffman table");
                    }
                    let table = Table::new(&counts, s[17..17 + total].to_vec());
                    match class {
                        0 => dc_tables[id] = Some(table),
                        1 => ac_tables[id] = Some(table),
                        _ => return Verdict::Damaged("a malformed Huffman table"),
                    }
                    s = &s[17 + total..];
                }
            }
            0xDD if segment.len() >= 2 => restart_interval = be16(segment, 0),
            0xC0..=0xC2 => match read_frame(segment, marker == 0xC2) {
                Some(f) => frame = Some(f),
                None => return Verdict::Unknown,
            },
            0xDA => {
                let Some(frame) = frame.as_mut() else {
                    return Verdict::Unknown;
                };
                let data_start = end;
                let scan = match read_scan(segment, frame, &dc_tables, &ac_tables) {
                    Ok(scan) => scan,
                    Err(verdict) => return verdict,
                };
                let mut bits = Bits::new(bytes, data_start);
                match walk_scan(&mut bits, frame, &scan, restart_interval) {
                    Verdict::Whole => {}
                    other => return other,
                }
                scans += 1;
                match bits.next_marker() {
                    Some(marker_at) => {
                        at = marker_at;
                        continue;
                    }
                    None => return Verdict::EndsEarly,
                }
            }
            _ => {}
        }
        at = end;
    }
}

fn read_frame(s: &[u8], progressive: bool) -> Option<Frame> {
    if s.len() < 6 {
        return None;
    }
    let (height, width, count) = (be16(s, 1), be16(s, 3), s[5] as usize);
    if height == 0 || width == 0 || count == 0 || s.len() < 6 + 3 * count {
        return None;
    }
    let mut components: Vec<Component> = (0..count)
        .map(|i| {
            let c = &s[6 + 3 * i..9 + 3 * i];
            Component {
                id: c[0],
                h: (c[1] >> 4).max(1) as usize,
                v: (c[1] & 15).max(1) as usize,
                blocks_wide: 0,
                blocks_high: 0,
                nonzero: vec![],
            }
        })
        .collect();
    let h_max = components.iter().map(|c| c.h).max()?;
    let v_max = components.iter().map(|c| c.v).max()?;
    for c in &mut components {
        c.blocks_wide = (width * c.h).div_ceil(h_max).div_ceil(8);
        c.blocks_high = (height * c.v).div_ceil(v_max).div_ceil(8);
        if progressive {
            c.nonzero = vec![0; c.blocks_wide * c.blocks_high];
        }
    }
    Some(Frame {
        progressive,
        width,
        height,
        components,
        h_max,
        v_max,
    })
}

struct Scan<'t> {
    /// Index into the frame's components, with the scan's DC and AC tables.
    members: Vec<(usize, Option<&'t Table>, Option<&'t Table>)>,
    spectral_start: usize,
    spectral_end: usize,
    refining: bool,
}

fn read_scan<'t>(
    s: &[u8],
    frame: &Frame,
    dc: &'t [Option<Table>; 4],
    ac: &'t [Option<Table>; 4],
) -> Result<Scan<'t>, Verdict> {
    let count = *s.first().ok_or(Verdict::Damaged("an empty scan header"))? as usize;
    if count == 0 || s.len() < 1 + 2 * count + 3 {
        return Err(Verdict::Damaged("a malformed scan header"));
    }
    let mut members = vec![];
    for i in 0..count {
        let (id, tables) = (s[1 + 2 * i], s[2 + 2 * i]);
        let index = frame
            .components
            .iter()
            .position(|c| c.id == id)
            .ok_or(Verdict::Damaged("a scan of a component the frame lacks"))?;
        let table =
            |set: &'t [Option<Table>; 4], t: u8| set.get(t as usize).and_then(Option::as_ref);
        members.push((index, table(dc, tables >> 4), table(ac, tables & 15)));
    }
    let tail = &s[1 + 2 * count..];
    let (spectral_start, spectral_end) = (tail[0] as usize, tail[1] as usize);
    if !frame.progressive {
        return Ok(Scan {
            members,
            spectral_start: 0,
            spectral_end: 63,
            refining: false,
        });
    }
    if spectral_end > 63 || spectral_start > spectral_end {
        return Err(Verdict::Damaged("a scan with an impossible spectral range"));
    }
    Ok(Scan {
        members,
        spectral_start,
        spectral_end,
        refining: tail[2] >> 4 != 0,
    })
}

/// The blocks of the scan in coding order, as (member, block row, block column).
fn walk_scan(bits: &mut Bits, frame: &mut Frame, scan: &Scan, restart_interval: usize) -> Verdict {
    // A table the scan needs and nobody defined: baseline files may rely on the standard
    // tables (motion JPEG), which this walk does not carry.
    let needs_dc = scan.spectral_start == 0 && !scan.refining;
    let needs_ac = scan.spectral_end > 0;
    if scan
        .members
        .iter()
        .any(|(_, dc, ac)| (needs_dc && dc.is_none()) || (needs_ac && ac.is_none()))
    {
        return Verdict::Unknown;
    }
    let mut units = vec![];
    if scan.members.len() == 1 {
        let c = &frame.components[scan.members[0].0];
        for row in 0..c.blocks_high {
            for col in 0..c.blocks_wide {
                units.push(vec![(0, row, col)]);
            }
        }
    } else {
        let mcus_wide = frame.width.div_ceil(8 * frame.h_max);
        let mcus_high = frame.height.div_ceil(8 * frame.v_max);
        for my in 0..mcus_high {
            for mx in 0..mcus_wide {
                let mut unit = vec![];
                for (member, (index, _, _)) in scan.members.iter().enumerate() {
                    let c = &frame.components[*index];
                    for y in 0..c.v {
                        for x in 0..c.h {
                            unit.push((member, my * c.v + y, mx * c.h + x));
                        }
                    }
                }
                units.push(unit);
            }
        }
    }
    let mut eob_run = 0u32;
    for (n, unit) in units.iter().enumerate() {
        if restart_interval > 0 && n > 0 && n % restart_interval == 0 {
            if !bits.restart() {
                return Verdict::EndsEarly;
            }
            eob_run = 0;
        }
        for &(member, row, col) in unit {
            let (index, dc, ac) = scan.members[member];
            let component = &mut frame.components[index];
            // Padding blocks of an interleaved scan lie outside the component's own grid.
            let nonzero = if row < component.blocks_high && col < component.blocks_wide {
                component.nonzero.get_mut(row * component.blocks_wide + col)
            } else {
                None
            };
            let result = block(bits, scan, dc, ac, &mut eob_run, nonzero);
            match result {
                Ok(Ok(())) => {}
                Ok(Err(what)) => return Verdict::Damaged(what),
                Err(Short) => return Verdict::EndsEarly,
            }
        }
    }
    Verdict::Whole
}

type Step = Result<Result<(), &'static str>, Short>;

macro_rules! symbol {
    ($bits:expr, $table:expr) => {
        match $bits.symbol($table)? {
            Ok(s) => s,
            Err(what) => return Ok(Err(what)),
        }
    };
}

/// One block's symbols (and the bits that follow them) for the scan's kind.
fn block(
    bits: &mut Bits,
    scan: &Scan,
    dc: Option<&Table>,
    ac: Option<&Table>,
    eob_run: &mut u32,
    nonzero: Option<&mut u64>,
) -> Step {
    let mut scratch = 0u64;
    let nonzero = nonzero.unwrap_or(&mut scratch);
    if scan.spectral_start == 0 {
        if scan.refining {
            bits.bits(1)?;
        } else {
            let size = symbol!(bits, dc.expect("checked")) as u32;
            if size > 16 {
                return Ok(Err("a DC difference longer than 16 bits"));
            }
            bits.bits(size)?;
        }
        if scan.spectral_end == 0 {
            return Ok(Ok(()));
        }
    }
    let ac = ac.expect("checked");
    let start = scan.spectral_start.max(1);
    let end = scan.spectral_end;
    if !scan.refining {
        if *eob_run > 0 {
            *eob_run -= 1;
            return Ok(Ok(()));
        }
        let mut k = start;
        while k <= end {
            let rs = symbol!(bits, ac);
            let (run, size) = ((rs >> 4) as usize, (rs & 15) as u32);
            if size == 0 {
                if run < 15 {
                    *eob_run = (1u32 << run) - 1 + bits.bits(run as u32)?;
                    break;
                }
                k += 16;
                continue;
            }
            k += run;
            if k > end {
                return Ok(Err("a coefficient past the end of its block"));
            }
            bits.bits(size)?;
            *nonzero |= 1 << k;
            k += 1;
        }
        return Ok(Ok(()));
    }
    // A refinement scan: one correction bit for every coefficient already non-zero, and the
    // newly non-zero ones placed among the zero ones by their run lengths.
    let mut k = start;
    if *eob_run == 0 {
        while k <= end {
            let rs = symbol!(bits, ac);
            let (mut run, size) = ((rs >> 4) as i32, rs & 15);
            let mut becomes_nonzero = false;
            if size != 0 {
                bits.bits(1)?;
                becomes_nonzero = true;
            } else if run != 15 {
                *eob_run = (1u32 << run) + bits.bits(run as u32)?;
                break;
            }
            while k <= end {
                if *nonzero & (1 << k) != 0 {
                    bits.bits(1)?;
                } else {
                    run -= 1;
                    if run < 0 {
                        break;
                    }
                }
                k += 1;
            }
            if becomes_nonzero && k <= end {
                *nonzero |= 1 << k;
            }
            k += 1;
        }
    }
    if *eob_run > 0 {
        while k <= end {
            if *nonzero & (1 << k) != 0 {
                bits.bits(1)?;
            }
            k += 1;
        }
        *eob_run -= 1;
    }
    Ok(Ok(()))
}
