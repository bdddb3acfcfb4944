//! The zip container of `torch.save`: a minimal, read-only, **stored-entries-only** reader.
//!
//! ## Why our own reader and not the `zip` crate
//!
//! We need exactly one thing from the archive: for each entry, where its bytes begin in the file, so
//! that a storage can be a slice of the mmap. That is the central directory (names, sizes, the offset
//! of each local header) plus the length of each local header — about 200 lines. The `zip` crate does
//! expose `data_start()`, but it brings decompressors (deflate, bzip2, zstd, lzma, AES) that ferrollm
//! must never run on a checkpoint, reads every entry into owned structures up front, and would add a
//! dependency tree to a C-ABI library for a job this small. Owning the parser also means every bound
//! is checked where we can see it: nothing is allocated from a declared count without bounding it by
//! the bytes that actually hold it, and a compressed entry is refused before any of its bytes are
//! looked at (so a zip bomb costs nothing).
//!
//! ## Layout relied on (APPNOTE.TXT 6.3; what PyTorch's miniz-based writer emits)
//!
//! - End of central directory (EOCD, `PK\x05\x06`, 22 bytes + comment) at the end of the file;
//!   fields: disk numbers (must be 0), entry counts, central directory size and offset. A field of
//!   all ones (`0xFFFF`/`0xFFFFFFFF`) means "see the zip64 record". PyTorch always writes the zip64
//!   EOCD record (`PK\x06\x06`) and its locator (`PK\x06\x07`, 20 bytes, immediately before the EOCD),
//!   even for small files; we use the zip64 values whenever the locator is present.
//! - Central directory headers (`PK\x01\x02`, 46 bytes + name + extra + comment): method at 10,
//!   compressed size at 20, uncompressed size at 24, name/extra/comment lengths at 28/30/32, disk at
//!   34, local header offset at 42. Sizes and offset of `0xFFFFFFFF` are in the zip64 extra field
//!   (id `0x0001`), in the order uncompressed, compressed, local header offset.
//! - Local headers (`PK\x03\x04`, 30 bytes + name + extra): name and extra lengths at 26/28. PyTorch
//!   pads the local extra field (id `FB`) so that every storage's data starts on a 64-byte boundary,
//!   and sets general-purpose bit 3 (sizes in a data descriptor after the data; the local header's
//!   sizes are 0) — so sizes are always taken from the central directory, never the local header.
//! - Every entry is stored (method 0): `torch.save` never compresses.

use crate::error::{Error, ErrorKind, Result};
use std::collections::HashMap;

const EOCD_SIG: u32 = 0x0605_4b50;
const EOCD_LEN: usize = 22;
const ZIP64_LOCATOR_SIG: u32 = 0x0706_4b50;
const ZIP64_LOCATOR_LEN: usize = 20;
const ZIP64_EOCD_SIG: u32 = 0x0606_4b50;
const ZIP64_EOCD_LEN: usize = 56;
const CENTRAL_SIG: u32 = 0x0201_4b50;
const CENTRAL_LEN: usize = 46;
const LOCAL_SIG: u32 = 0x0403_4b50;
const LOCAL_LEN: usize = 30;
/// The EOCD comment is at most 65535 bytes, so the EOCD starts within this many bytes of the end.
const EOCD_SEARCH: usize = EOCD_LEN + 0xFFFF;

/// One entry of the central directory.
#[derive(Clone, Debug)]
pub struct ZipEntry {
    pub name: String,
    /// Compression method (0 = stored, 8 = deflate, …).
    pub method: u16,
    pub flags: u16,
    pub compressed_size: u64,
    pub uncompressed_size: u64,
    pub local_header_offset: u64,
}

/// The central directory of a zip archive held in memory (an mmap).
pub struct ZipArchive {
    entries: Vec<ZipEntry>,
    by_name: HashMap<String, usize>,
    /// Where the central directory starts: every entry's data must end at or before it.
    data_end: u64,
}

fn fmt_err(message: impl Into<String>) -> Error {
    Error::new(ErrorKind::Format, message)
}

fn u16_at(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_le_bytes(
        b.get(at..at.checked_add(2)?)?.try_into().ok()?,
    ))
}
fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(
        b.get(at..at.checked_add(4)?)?.try_into().ok()?,
    ))
}
fn u64_at(b: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_le_bytes(
        b.get(at..at.checked_add(8)?)?.try_into().ok()?,
    ))
}

/// A `u64` from the file as a position in it: larger than the file means malformed.
fn to_pos(v: u64, file_len: usize, what: &str) -> Result<usize> {
    match usize::try_from(v) {
        Ok(p) if p <= file_len => Ok(p),
        _ => Err(fmt_err(format!(
            "zip {what} {v} is past the end of the file ({file_len} bytes)"
        ))),
    }
}

impl ZipArchive {
    /// Parses the central directory of `data`. Entries' data are not looked at here.
    pub fn parse(data: &[u8]) -> Result<ZipArchive> {
        let len = data.len();
        if len < EOCD_LEN {
            return Err(fmt_err(format!(
                "is {len} bytes long, too short for a zip archive (PyTorch checkpoints are zip files)"
            )));
        }
        // The EOCD: the last signature whose comment runs exactly to the end of the file.
        let lo = len.saturating_sub(EOCD_SEARCH);
        let mut eocd = None;
        let mut pos = len - EOCD_LEN;
        loop {
            if u32_at(data, pos) == Some(EOCD_SIG) {
                let comment = u16_at(data, pos + 20).unwrap_or(0) as usize;
                if pos + EOCD_LEN + comment == len {
                    eocd = Some(pos);
                    break;
                }
            }
            if pos == lo {
                break;
            }
            pos -= 1;
        }
        let Some(eocd) = eocd else {
            return Err(fmt_err(
                "is not a zip archive (no end-of-central-directory record; truncated?)",
            ));
        };
        let disk = u16_at(data, eocd + 4).unwrap_or(0);
        let cd_disk = u16_at(data, eocd + 6).unwrap_or(0);
        let mut n_entries = u64::from(u16_at(data, eocd + 10).unwrap_or(0));
        let mut cd_size = u64::from(u32_at(data, eocd + 12).unwrap_or(0));
        let mut cd_offset = u64::from(u32_at(data, eocd + 16).unwrap_or(0));
        if disk != 0 || cd_disk != 0 {
            return Err(Error::unsupported(
                "multi-disk (split) zip archives are not supported",
            ));
        }
        // The end of the region that holds entries and the central directory.
        let mut records_end = eocd as u64;
        if eocd >= ZIP64_LOCATOR_LEN
            && u32_at(data, eocd - ZIP64_LOCATOR_LEN) == Some(ZIP64_LOCATOR_SIG)
        {
            let loc = eocd - ZIP64_LOCATOR_LEN;
            let rec = u64_at(data, loc + 8).unwrap_or(u64::MAX);
            if u32_at(data, loc + 4) != Some(0) || u32_at(data, loc + 16).unwrap_or(1) > 1 {
                return Err(Error::unsupported(
                    "multi-disk (split) zip archives are not supported",
                ));
            }
            let rec = to_pos(rec, loc, "zip64 end-of-central-directory offset")?;
            if rec.checked_add(ZIP64_EOCD_LEN).is_none_or(|e| e > loc)
                || u32_at(data, rec) != Some(ZIP64_EOCD_SIG)
            {
                return Err(fmt_err(format!(
                    "the zip64 end-of-central-directory record at offset {rec} is missing or truncated"
                )));
            }
            if u32_at(data, rec + 16) != Some(0) || u32_at(data, rec + 20) != Some(0) {
                return Err(Error::unsupported(
                    "multi-disk (split) zip archives are not supported",
                ));
            }
            n_entries = u64_at(data, rec + 32).unwrap_or(0);
            cd_size = u64_at(data, rec + 40).unwrap_or(0);
            cd_offset = u64_at(data, rec + 48).unwrap_or(0);
            records_end = rec as u64;
        } else if n_entries == 0xFFFF || cd_size == 0xFFFF_FFFF || cd_offset == 0xFFFF_FFFF {
            return Err(fmt_err(
                "the end-of-central-directory record refers to a zip64 record that is missing",
            ));
        }
        let cd_end = cd_offset
            .checked_add(cd_size)
            .filter(|&e| e <= records_end)
            .ok_or_else(|| {
                fmt_err(format!(
                    "the zip central directory ({cd_size} bytes at offset {cd_offset}) runs past \
                     its end record at offset {records_end}"
                ))
            })?;
        // Every entry takes at least CENTRAL_LEN bytes: the count is bounded by the directory size.
        if n_entries > cd_size / CENTRAL_LEN as u64 {
            return Err(fmt_err(format!(
                "the zip central directory declares {n_entries} entries, more than its {cd_size} \
                 bytes can hold"
            )));
        }
        let (cd_offset, cd_end) = (cd_offset as usize, cd_end as usize);
        let mut entries = Vec::with_capacity(n_entries as usize);
        let mut by_name = HashMap::with_capacity(n_entries as usize);
        let mut p = cd_offset;
        for i in 0..n_entries {
            let head = data
                .get(p..p.saturating_add(CENTRAL_LEN).min(cd_end))
                .filter(|h| h.len() == CENTRAL_LEN)
                .ok_or_else(|| fmt_err(format!("zip central directory entry {i} is truncated")))?;
            if u32_at(head, 0) != Some(CENTRAL_SIG) {
                return Err(fmt_err(format!(
                    "zip central directory entry {i} (offset {p}) has a bad signature"
                )));
            }
            let flags = u16_at(head, 8).unwrap_or(0);
            let method = u16_at(head, 10).unwrap_or(0);
            let mut compressed_size = u64::from(u32_at(head, 20).unwrap_or(0));
            let mut uncompressed_size = u64::from(u32_at(head, 24).unwrap_or(0));
            let name_len = usize::from(u16_at(head, 28).unwrap_or(0));
            let extra_len = usize::from(u16_at(head, 30).unwrap_or(0));
            let comment_len = usize::from(u16_at(head, 32).unwrap_or(0));
            let entry_disk = u16_at(head, 34).unwrap_or(0);
            let mut local_header_offset = u64::from(u32_at(head, 42).unwrap_or(0));
            let name_start = p + CENTRAL_LEN;
            let extra_start = name_start + name_len;
            let next = extra_start + extra_len + comment_len;
            if next > cd_end {
                return Err(fmt_err(format!(
                    "zip central directory entry {i} runs past the end of the directory"
                )));
            }
            let name = std::str::from_utf8(&data[name_start..extra_start])
                .map_err(|_| {
                    fmt_err(format!(
                        "zip entry {i} has a name that is not UTF-8 ({:?})",
                        String::from_utf8_lossy(&data[name_start..extra_start])
                    ))
                })?
                .to_string();
            // zip64 extended information: only the fields that are all ones are present, in order.
            let mut extra = &data[extra_start..extra_start + extra_len];
            while extra.len() >= 4 {
                let id = u16_at(extra, 0).unwrap_or(0);
                let size = usize::from(u16_at(extra, 2).unwrap_or(0));
                let Some(body) = extra.get(4..4 + size) else {
                    return Err(fmt_err(format!(
                        "zip entry `{name}` has a truncated extra field"
                    )));
                };
                if id == 0x0001 {
                    let mut q = 0;
                    let mut next_u64 = |field: &str| {
                        let v = u64_at(body, q).ok_or_else(|| {
                            fmt_err(format!(
                                "zip entry `{name}`: the zip64 extra field lacks the {field}"
                            ))
                        });
                        q += 8;
                        v
                    };
                    if uncompressed_size == 0xFFFF_FFFF {
                        uncompressed_size = next_u64("uncompressed size")?;
                    }
                    if compressed_size == 0xFFFF_FFFF {
                        compressed_size = next_u64("compressed size")?;
                    }
                    if local_header_offset == 0xFFFF_FFFF {
                        local_header_offset = next_u64("local header offset")?;
                    }
                }
                extra = &extra[4 + size..];
            }
            if entry_disk != 0 && entry_disk != 0xFFFF {
                return Err(Error::unsupported(format!(
                    "zip entry `{name}` is on disk {entry_disk}: split archives are not supported"
                )));
            }
            if by_name.insert(name.clone(), entries.len()).is_some() {
                return Err(fmt_err(format!(
                    "zip archive has two entries named `{name}`"
                )));
            }
            entries.push(ZipEntry {
                name,
                method,
                flags,
                compressed_size,
                uncompressed_size,
                local_header_offset,
            });
            p = next;
        }
        Ok(ZipArchive {
            entries,
            by_name,
            data_end: cd_offset as u64,
        })
    }

    /// Every entry, in central-directory order.
    pub fn entries(&self) -> &[ZipEntry] {
        &self.entries
    }

    /// The entry named `name`.
    pub fn entry(&self, name: &str) -> Option<&ZipEntry> {
        self.by_name.get(name).map(|&i| &self.entries[i])
    }

    /// The byte range in `data` of the (stored) entry `e`. Refuses compressed and encrypted entries
    /// without looking at their bytes, and checks the local header and the range against the file.
    pub fn data_range(&self, data: &[u8], e: &ZipEntry) -> Result<std::ops::Range<usize>> {
        let name = &e.name;
        if e.method != 0 {
            return Err(Error::unsupported(format!(
                "zip entry `{name}` is compressed (method {}, declaring {} bytes uncompressed); \
                 torch.save stores entries uncompressed and ferrollm never decompresses a checkpoint",
                e.method, e.uncompressed_size
            )));
        }
        if e.flags & 1 != 0 {
            return Err(Error::unsupported(format!(
                "zip entry `{name}` is encrypted"
            )));
        }
        if e.compressed_size != e.uncompressed_size {
            return Err(fmt_err(format!(
                "zip entry `{name}` is stored but its sizes differ ({} stored, {} uncompressed)",
                e.compressed_size, e.uncompressed_size
            )));
        }
        let lh = usize::try_from(e.local_header_offset)
            .ok()
            .filter(|&o| (o as u64).saturating_add(LOCAL_LEN as u64) <= self.data_end)
            .ok_or_else(|| {
                fmt_err(format!(
                    "zip entry `{name}`: local header offset {} is outside the entry region \
                     ({} bytes)",
                    e.local_header_offset, self.data_end
                ))
            })?;
        if u32_at(data, lh) != Some(LOCAL_SIG) {
            return Err(fmt_err(format!(
                "zip entry `{name}`: no local header at offset {lh}"
            )));
        }
        let name_len = usize::from(u16_at(data, lh + 26).unwrap_or(0));
        let extra_len = usize::from(u16_at(data, lh + 28).unwrap_or(0));
        let start = lh + LOCAL_LEN + name_len + extra_len;
        if data.get(lh + LOCAL_LEN..lh + LOCAL_LEN + name_len) != Some(name.as_bytes()) {
            return Err(fmt_err(format!(
                "zip entry `{name}`: the local header at offset {lh} names a different file"
            )));
        }
        let end = (start as u64)
            .checked_add(e.compressed_size)
            .filter(|&end| end <= self.data_end)
            .ok_or_else(|| {
                fmt_err(format!(
                    "zip entry `{name}` ({} bytes at offset {start}) runs past the entry region \
                     ({} bytes; truncated file?)",
                    e.compressed_size, self.data_end
                ))
            })?;
        Ok(start..end as usize)
    }
}

/// Writes a zip archive of stored entries in the layout [`ZipArchive::parse`] reads (no zip64, no
/// data descriptors, CRC left 0 as the reader does not check it). For tests and fuzzing: ferrollm
/// never writes PyTorch checkpoints. Entries must be smaller than 4 GiB and names shorter than
/// 64 KiB (it panics otherwise).
pub fn write_stored(entries: &[(&str, &[u8])]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut central = Vec::new();
    for (name, data) in entries {
        let offset = u32::try_from(out.len()).expect("archive under 4 GiB");
        let size = u32::try_from(data.len()).expect("entry under 4 GiB");
        let name_len = u16::try_from(name.len()).expect("name under 64 KiB");
        out.extend_from_slice(&LOCAL_SIG.to_le_bytes());
        out.extend_from_slice(&[20, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]); // version … crc
        out.extend_from_slice(&size.to_le_bytes());
        out.extend_from_slice(&size.to_le_bytes());
        out.extend_from_slice(&name_len.to_le_bytes());
        out.extend_from_slice(&0u16.to_le_bytes());
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(data);
        central.extend_from_slice(&CENTRAL_SIG.to_le_bytes());
        central.extend_from_slice(&[20, 0, 20, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]); // … crc
        central.extend_from_slice(&size.to_le_bytes());
        central.extend_from_slice(&size.to_le_bytes());
        central.extend_from_slice(&name_len.to_le_bytes());
        central.extend_from_slice(&[0; 12]); // extra, comment, disk, internal and external attrs
        central.extend_from_slice(&offset.to_le_bytes());
        central.extend_from_slice(name.as_bytes());
    }
    let cd_offset = u32::try_from(out.len()).expect("archive under 4 GiB");
    let cd_size = u32::try_from(central.len()).expect("archive under 4 GiB");
    let n = u16::try_from(entries.len()).expect("under 65536 entries");
    out.extend_from_slice(&central);
    out.extend_from_slice(&EOCD_SIG.to_le_bytes());
    out.extend_from_slice(&[0, 0, 0, 0]);
    out.extend_from_slice(&n.to_le_bytes());
    out.extend_from_slice(&n.to_le_bytes());
    out.extend_from_slice(&cd_size.to_le_bytes());
    out.extend_from_slice(&cd_offset.to_le_bytes());
    out.extend_from_slice(&0u16.to_le_bytes());
    out
}
