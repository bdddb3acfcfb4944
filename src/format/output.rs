//! Output files that appear only when complete.
//!
//! Data goes to a temporary file created in the target's own folder (so the final rename stays on
//! one filesystem and is atomic); `finish` flushes, syncs and renames it into place. Dropping an
//! unfinished [`OutputFile`] deletes the temporary file, so an error or a cancellation leaves nothing.

use crate::error::{Error, IoContext, Result};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

/// A file being written; see the module documentation.
pub struct OutputFile {
    target: PathBuf,
    writer: BufWriter<tempfile::NamedTempFile>,
    position: u64,
}

impl OutputFile {
    /// Starts writing the file that will be `target`. The target's folder must exist.
    pub fn create(target: &Path) -> Result<OutputFile> {
        let dir = match target.parent() {
            Some(p) if !p.as_os_str().is_empty() => p,
            _ => Path::new("."),
        };
        if target.is_dir() {
            return Err(Error::invalid_argument(format!(
                "{}: is a directory, expected a file path",
                target.display()
            )));
        }
        let name = target
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let tmp = tempfile::Builder::new()
            .prefix(&format!(".{name}."))
            .suffix(".partial")
            .tempfile_in(dir)
            .at(target, "create a temporary file beside")?;
        Ok(OutputFile {
            target: target.to_path_buf(),
            writer: BufWriter::with_capacity(1 << 20, tmp),
            position: 0,
        })
    }

    /// The path the file will have once finished.
    pub fn target(&self) -> &Path {
        &self.target
    }

    /// Bytes written so far.
    pub fn position(&self) -> u64 {
        self.position
    }

    pub fn write_all(&mut self, data: &[u8]) -> Result<()> {
        self.writer.write_all(data).at(&self.target, "write")?;
        self.position += data.len() as u64;
        Ok(())
    }

    /// Writes zero bytes until the position is a multiple of `alignment`.
    pub fn pad_to(&mut self, alignment: u64) -> Result<()> {
        const ZEROS: [u8; 256] = [0; 256];
        let mut pad = self.position.next_multiple_of(alignment) - self.position;
        while pad > 0 {
            let n = pad.min(ZEROS.len() as u64) as usize;
            self.write_all(&ZEROS[..n])?;
            pad -= n as u64;
        }
        Ok(())
    }

    /// Flushes, syncs and renames the file into place (replacing an existing file at the target).
    pub fn finish(self) -> Result<PathBuf> {
        let target = self.target;
        let tmp = self
            .writer
            .into_inner()
            .map_err(|e| Error::io(&target, "write", e.into_error()))?;
        // Temporary files are created private (0600); a finished model file is an ordinary one.
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            tmp.as_file()
                .set_permissions(std::fs::Permissions::from_mode(0o644))
                .at(&target, "set the permissions of")?;
        }
        tmp.as_file().sync_all().at(&target, "sync")?;
        tmp.persist(&target)
            .map_err(|e| Error::io(&target, "rename into place", e.error))?;
        Ok(target)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn appears_only_when_finished() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("out.bin");
        let mut out = OutputFile::create(&target).unwrap();
        out.write_all(b"abc").unwrap();
        out.pad_to(32).unwrap();
        assert_eq!(out.position(), 32);
        assert!(!target.exists());
        assert_eq!(out.finish().unwrap(), target);
        assert_eq!(std::fs::read(&target).unwrap().len(), 32);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&target).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o644);
        }
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn dropped_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("out.bin");
        let mut out = OutputFile::create(&target).unwrap();
        out.write_all(&[1; 4096]).unwrap();
        drop(out);
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }

    #[test]
    fn missing_folder_is_an_io_error_naming_the_target() {
        let err = OutputFile::create(Path::new("/nonexistent-dir/x/out.bin"))
            .err()
            .unwrap();
        assert_eq!(err.kind(), crate::ErrorKind::Io);
        assert!(
            err.message().contains("/nonexistent-dir/x/out.bin"),
            "{err}"
        );
    }
}
