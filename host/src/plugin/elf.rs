//! The structural check of a shared object before `dlopen`: glibc maps a
//! truncated ELF file and then dies of SIGBUS at the first touch of a page
//! past its end, so a file whose headers reach past its end is refused
//! here, as an error, first.

/// Refuses files `dlopen` must not see: on ELF platforms, a file whose
/// program headers reach past its end (a truncated or half-written copy).
/// glibc maps such a file and then faults (SIGBUS) on the missing pages,
/// killing the whole process; this check makes it an error instead.
/// Non-ELF files are left to `dlopen`, which refuses them cleanly.
pub(crate) fn check_object_file(bytes: &[u8]) -> Result<(), String> {
    if bytes.is_empty() {
        return Err("the file is empty".into());
    }
    if cfg!(any(target_vendor = "apple", windows)) {
        return Ok(());
    }
    check_elf(bytes)
}

/// Structural check of an ELF shared object: header, program headers and
/// section header table all inside the file, every segment's file bytes
/// present.
fn check_elf(bytes: &[u8]) -> Result<(), String> {
    const TRUNC: &str = "truncated or corrupt ELF file";
    if bytes.len() < 16 || &bytes[..4] != b"\x7fELF" {
        return Err("not an ELF file (no ELF header)".into());
    }
    let is64 = match bytes[4] {
        1 => false,
        2 => true,
        c => return Err(format!("not a valid ELF file (class {c})")),
    };
    let le = match bytes[5] {
        1 => true,
        2 => false,
        d => return Err(format!("not a valid ELF file (data encoding {d})")),
    };
    let rd = |off: usize, size: usize| -> Option<u64> {
        let b = bytes.get(off..off.checked_add(size)?)?;
        let mut v = 0u64;
        for i in 0..size {
            let byte = if le { b[size - 1 - i] } else { b[i] };
            v = (v << 8) | u64::from(byte);
        }
        Some(v)
    };
    let header_len = if is64 { 64 } else { 52 };
    if bytes.len() < header_len {
        return Err(format!(
            "{TRUNC}: {} bytes, shorter than its ELF header",
            bytes.len()
        ));
    }
    let e_type = rd(16, 2).unwrap_or(0);
    if e_type != 3 {
        return Err(format!(
            "not a shared library (ELF type {e_type}, expected ET_DYN)"
        ));
    }
    let (phoff, shoff, phentsize, phnum, shentsize, shnum) = if is64 {
        (
            rd(32, 8),
            rd(40, 8),
            rd(54, 2),
            rd(56, 2),
            rd(58, 2),
            rd(60, 2),
        )
    } else {
        (
            rd(28, 4),
            rd(32, 4),
            rd(42, 2),
            rd(44, 2),
            rd(46, 2),
            rd(48, 2),
        )
    };
    let (Some(phoff), Some(shoff), Some(phentsize), Some(phnum), Some(shentsize), Some(shnum)) =
        (phoff, shoff, phentsize, phnum, shentsize, shnum)
    else {
        return Err(TRUNC.into());
    };
    let len = bytes.len() as u64;
    let min_phent = if is64 { 56 } else { 32 };
    if phnum == 0 || phentsize < min_phent {
        return Err(format!("{TRUNC}: no valid program headers"));
    }
    let table_end =
        |off: u64, ent: u64, num: u64| ent.checked_mul(num).and_then(|n| off.checked_add(n));
    match table_end(phoff, phentsize, phnum) {
        Some(end) if end <= len => {}
        _ => {
            return Err(format!(
                "{TRUNC}: its program headers end past the end of the file ({len} bytes)"
            ))
        }
    }
    for i in 0..phnum {
        let base = (phoff + i * phentsize) as usize;
        let (offset, filesz) = if is64 {
            (rd(base + 8, 8), rd(base + 32, 8))
        } else {
            (rd(base + 4, 4), rd(base + 16, 4))
        };
        let (Some(offset), Some(filesz)) = (offset, filesz) else {
            return Err(TRUNC.into());
        };
        if filesz == 0 {
            continue;
        }
        match offset.checked_add(filesz) {
            Some(end) if end <= len => {}
            _ => {
                return Err(format!(
                    "{TRUNC}: segment {i} needs bytes up to offset {} but the file has {len} \
                     (a partial copy? install by writing a temporary file and renaming it)",
                    offset.saturating_add(filesz)
                ))
            }
        }
    }
    if shoff != 0 && shnum != 0 {
        match table_end(shoff, shentsize, shnum) {
            Some(end) if end <= len => {}
            _ => {
                return Err(format!(
                    "{TRUNC}: its section headers end past the end of the file ({len} bytes; \
                     a partial copy?)"
                ))
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    #[test]
    fn elf_check_refuses_garbage_without_panicking() {
        assert!(check_elf(b"").is_err());
        assert!(check_elf(b"hello world, not a library").is_err());
        assert!(check_elf(b"\x7fELF").is_err());
        let mut h = vec![0u8; 64];
        h[..4].copy_from_slice(b"\x7fELF");
        h[4] = 2;
        h[5] = 1;
        h[16] = 3; // ET_DYN
                   // No program headers.
        assert!(check_elf(&h).unwrap_err().contains("program headers"));
        // Program header table far past the end, with overflowing sizes.
        h[32..40].copy_from_slice(&u64::MAX.to_le_bytes());
        h[54..56].copy_from_slice(&56u16.to_le_bytes());
        h[56..58].copy_from_slice(&u16::MAX.to_le_bytes());
        assert!(check_elf(&h).unwrap_err().contains("program headers"));
        // ET_EXEC is not a shared library.
        h[16] = 2;
        assert!(check_elf(&h).unwrap_err().contains("ET_DYN"));
    }

    #[test]
    fn elf_check_accepts_a_real_library_and_refuses_every_prefix() {
        // The test binary's own dependencies are real shared objects; use the
        // first one found in /proc/self/maps.
        let Ok(maps) = fs::read_to_string("/proc/self/maps") else {
            eprintln!("skipped: no /proc/self/maps");
            return;
        };
        let Some(lib) = maps
            .lines()
            .filter_map(|l| l.split_whitespace().nth(5))
            .find(|p| p.starts_with('/') && p.contains(".so"))
        else {
            eprintln!("skipped: no shared library mapped");
            return;
        };
        let bytes = fs::read(lib).expect("read a mapped library");
        check_elf(&bytes).unwrap_or_else(|e| panic!("{lib}: {e}"));
        for cut in [
            1,
            16,
            63,
            64,
            200,
            bytes.len() / 3,
            bytes.len() / 2,
            bytes.len() - 1,
        ] {
            assert!(
                check_elf(&bytes[..cut]).is_err(),
                "{lib} cut at {cut} accepted"
            );
        }
    }
}
