//! The spool's reserve: space set aside in advance, so that a record can be spooled on a
//! full disk.
//!
//! A database that cannot take a record because its disk is full sends it to the spool, and
//! the spool is usually on the same disk: writing its file fails too (`ENOSPC`, `EDQUOT`).
//! The reserve is a directory [`RESERVE_DIR`] inside the spool holding up to
//! [`RESERVE_SLOTS`] slot files of [`SLOT_BYTES`] each, their blocks written (zeros) when
//! there was room. A spool write that meets a full disk takes a slot instead of a new file:
//! renamed to the record's temporary name (within the file system: no new block), the
//! record written over its first bytes (blocks that are already allocated), cut to the
//! record's length, synced, renamed to its final name, the directory synced: the same
//! record file, durable in the same way, that a merge reads.
//!
//! * **Who fills it**: [`fill`], by `wtmpdbd` as it starts, by `wtmpdb boot`, and by a merge
//!   that merged records (the records a slot took are among them) and finds fewer slots than
//!   [`RESERVE_SLOTS`]. A full disk stops a fill quietly: a partial reserve is still one.
//!   A write with nothing to spool never looks at the reserve.
//! * **Whose**: the spool's owner's, as the spool is: a directory 0700 of the writer's, not
//!   a link, slots that are regular files of the writer's with one link; anything else is
//!   not used (and a fill does not make slots in it).
//! * **Out of the merge's way**: the merge, the count of records waiting and a takeover of
//!   the spool skip names starting with `.`; the merge's clean-up leaves [`RESERVE_DIR`]
//!   alone.
//!
//! On btrfs the reserve, the spool and the database's directory are marked to write in
//! place (`chattr +C`, see `sys::no_copy_on_write_on_btrfs`): copied on write, a slot would
//! need new blocks when the record is written over it. What it does not cover: ZFS, which
//! always copies on write; the spool directory needs no new block for the names of
//! some 70 records waiting at once (ext4's first block), more may need one.

use std::fs::{self, File};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, FileExt, MetadataExt, OpenOptionsExt};
use std::path::Path;

/// The reserve's directory inside the spool directory.
pub const RESERVE_DIR: &str = ".reserve";

/// How many slots a full reserve holds: a burst of logins and logouts (a record each) while
/// the disk is full. 32 slots of [`SLOT_BYTES`] are 384 KiB.
pub const RESERVE_SLOTS: usize = 32;

/// The size of a slot: at least the largest record a merge reads back (four items of
/// [`crate::session::MAX_ITEM_BYTES`] in hex, 8 KiB, and some 150 bytes of keys and
/// numbers), rounded up to whole 4 KiB blocks.
pub const SLOT_BYTES: u64 = 12 * 1024;

// A slot holds no record the merge would not read back (see `the_largest_record_fits_a_slot`
// for the other side).
const _: () = assert!(SLOT_BYTES <= super::MAX_RECORD_BYTES);

/// The prefix of a slot being made (skipped by writers taking one).
const NEW_PREFIX: &str = ".new-";

/// Whether `e` says the disk (or the writer's quota) is full.
pub fn is_full(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::ENOSPC | libc::EDQUOT))
}

/// Opens the reserve directory `dir` (creating it 0700 if `create`): None when it does not
/// exist. One that is a link, another user's or open to others is refused (an error).
fn open(dir: &Path, create: bool) -> io::Result<Option<File>> {
    if create {
        match fs::DirBuilder::new().mode(0o700).create(dir) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(e),
        }
    }
    let handle = match fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_DIRECTORY | libc::O_NOFOLLOW)
        .open(dir)
    {
        Ok(h) => h,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    let meta = handle.metadata()?;
    if meta.uid() != crate::sys::euid() || meta.mode() & 0o077 != 0 {
        return Err(io::Error::new(
            io::ErrorKind::PermissionDenied,
            format!(
                "the reserve {} is not the writer's alone (uid {}, mode {:o}): not used",
                dir.display(),
                meta.uid(),
                meta.mode() & 0o777
            ),
        ));
    }
    Ok(Some(handle))
}

/// The names of the slots in the reserve `dir`: regular files, not those being made.
fn slots(dir: &Path) -> io::Result<Vec<String>> {
    Ok(fs::read_dir(dir)?
        .filter_map(|e| {
            let e = e.ok()?;
            e.file_type().ok()?.is_file().then_some(())?;
            e.file_name().into_string().ok()
        })
        .filter(|n| !n.starts_with('.'))
        .collect())
}

/// Whether the open file `meta` describes is a slot: a regular file of the writer's with
/// one link, [`SLOT_BYTES`] long, its blocks all allocated.
fn is_slot(meta: &fs::Metadata) -> bool {
    meta.is_file()
        && meta.uid() == crate::sys::euid()
        && meta.nlink() == 1
        && meta.len() == SLOT_BYTES
        && meta.blocks() * 512 >= SLOT_BYTES
}

/// How a record taken into a slot ended.
#[derive(Debug)]
pub enum Taken {
    /// The record is in the spool under its final name; this many slots are left.
    Done { left: usize },
    /// No slot to take: no reserve, an empty one, or a record larger than a slot.
    Empty,
}

/// Writes `text` into the spool `spool` (its open directory `handle`) as the record file
/// `done`, through a slot of the reserve renamed to `temp` (both in `spool`).
pub fn take(
    spool: &Path,
    handle: &File,
    temp: &Path,
    done: &Path,
    text: &[u8],
) -> io::Result<Taken> {
    if text.len() as u64 > SLOT_BYTES {
        return Ok(Taken::Empty);
    }
    let dir = spool.join(RESERVE_DIR);
    let Some(reserve) = open(&dir, false)? else {
        return Ok(Taken::Empty);
    };
    for name in slots(&dir)? {
        match fs::rename(dir.join(&name), temp) {
            Ok(()) => {}
            // Taken by another writer meanwhile.
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e),
        }
        let written = write_over(temp, text).and_then(|ours| {
            if !ours {
                return Ok(false);
            }
            fs::rename(temp, done)?;
            handle.sync_all()?;
            // The slot's old name gone for good too (not back after a crash, beside the
            // record's).
            reserve.sync_all()?;
            Ok(true)
        });
        match written {
            Ok(true) => {
                return Ok(Taken::Done {
                    left: slots(&dir).map_or(0, |s| s.len()),
                });
            }
            // Not a slot (made by no fill of ours): dropped, the next one tried.
            Ok(false) => {
                let _ = fs::remove_file(temp);
            }
            Err(e) => {
                let _ = fs::remove_file(temp);
                return Err(e);
            }
        }
    }
    Ok(Taken::Empty)
}

/// Writes `text` over the slot now named `path`, cuts it to the record's length and syncs
/// it: false (nothing written) when the file is not a slot.
fn write_over(path: &Path, text: &[u8]) -> io::Result<bool> {
    // No O_TRUNC: the slot's blocks are what the record is written into.
    let f = match fs::OpenOptions::new()
        .write(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(path)
    {
        Ok(f) => f,
        // A link, a directory, a FIFO put in its place: no slot.
        Err(e)
            if matches!(
                e.raw_os_error(),
                Some(libc::ELOOP | libc::EISDIR | libc::ENXIO)
            ) =>
        {
            return Ok(false);
        }
        Err(e) => return Err(e),
    };
    if !is_slot(&f.metadata()?) {
        return Ok(false);
    }
    f.write_all_at(text, 0)?;
    f.set_len(text.len() as u64)?;
    f.sync_data()?;
    Ok(true)
}

/// Fills the reserve of the spool directory `spool` (both created, 0700, when missing) up
/// to [`RESERVE_SLOTS`] slots: the number it holds now. A full disk stops it quietly (a
/// partial reserve); another fill at work leaves it to that one. Files in the reserve that
/// are not slots are removed.
pub fn fill(spool: &Path) -> io::Result<usize> {
    let dir = spool.join(RESERVE_DIR);
    let reserve = match open(&dir, true) {
        Ok(Some(r)) => r,
        Ok(None) => return Ok(0),
        Err(e) if is_full(&e) => return Ok(0),
        Err(e) => return Err(e),
    };
    if !crate::sys::flock_exclusive_nonblocking(&reserve)? {
        return slots(&dir).map(|s| s.len());
    }
    // On btrfs, slots written in place: a slot that is copied on write needs new blocks
    // when the record is written over it, which a full disk does not have. Slots made
    // before the mark was set are made again.
    let remake = crate::sys::no_copy_on_write_on_btrfs(&reserve).unwrap_or(false);
    let mut held = 0;
    for e in fs::read_dir(&dir)? {
        let Ok(e) = e else { continue };
        let path = e.path();
        // A slot half made by a fill that was killed (none is at work now) is no slot.
        let good = !remake
            && !e.file_name().as_encoded_bytes().starts_with(b".")
            && fs::symlink_metadata(&path).is_ok_and(|m| is_slot(&m));
        if good {
            held += 1;
        } else if !e.file_type().is_ok_and(|t| t.is_dir()) {
            let _ = fs::remove_file(&path);
        }
    }
    let zeros = vec![0u8; SLOT_BYTES as usize];
    let pid = std::process::id();
    let now = crate::time::now().max(0);
    while held < RESERVE_SLOTS {
        let i = held;
        let new = dir.join(format!("{NEW_PREFIX}{pid}-{i}"));
        let made = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW)
            .open(&new)
            .and_then(|mut f| f.write_all(&zeros))
            // Not synced: its blocks are the writer's once written (a crash may lose a
            // slot; `wtmpdb boot` fills the reserve again).
            .and_then(|()| fs::rename(&new, dir.join(format!("{now:020}-{pid}-{i}"))));
        match made {
            Ok(()) => held += 1,
            Err(e) => {
                let _ = fs::remove_file(&new);
                if is_full(&e) {
                    break;
                }
                return Err(e);
            }
        }
    }
    Ok(held)
}

/// [`fill`] when the reserve of `spool` holds fewer than [`RESERVE_SLOTS`] names (one listing
/// otherwise).
pub fn fill_if_short(spool: &Path) -> io::Result<usize> {
    match slots(&spool.join(RESERVE_DIR)) {
        Ok(s) if s.len() >= RESERVE_SLOTS => Ok(s.len()),
        _ => fill(spool),
    }
}
