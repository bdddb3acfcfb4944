//! Shared pieces of the commands that write files: the progress bar and the log output.

use ferrollm::progress::Progress;
use indicatif::{ProgressBar, ProgressStyle};

/// A progress bar on standard error (hidden when stderr is not a terminal) driven by the
/// library's progress reports.
pub struct Bar {
    bar: ProgressBar,
}

impl Bar {
    pub fn new() -> Bar {
        let bar = ProgressBar::new(0);
        bar.set_style(
            ProgressStyle::with_template("{prefix:>10} [{bar:30}] {pos}/{len} {wide_msg}")
                .expect("valid template")
                .progress_chars("=> "),
        );
        Bar { bar }
    }
    /// The callback to hand to the library.
    pub fn callback(&self) -> impl FnMut(&Progress<'_>) -> bool + '_ {
        |p| {
            self.bar.set_prefix(p.stage.to_string());
            self.bar.set_length(p.total);
            self.bar.set_position(p.current);
            self.bar.set_message(p.tensor.to_string());
            true
        }
    }
    pub fn finish(&self) {
        self.bar.finish_and_clear();
    }
}

/// Prints log records to standard error: warnings always, information with `-v`.
struct StderrLog {
    verbose: bool,
}

impl log::Log for StderrLog {
    fn enabled(&self, m: &log::Metadata<'_>) -> bool {
        m.level()
            <= if self.verbose {
                log::Level::Debug
            } else {
                log::Level::Warn
            }
    }
    fn log(&self, r: &log::Record<'_>) {
        if self.enabled(r.metadata()) {
            let level = match r.level() {
                log::Level::Error => "error",
                log::Level::Warn => "warning",
                _ => "info",
            };
            eprintln!("{level}: {}", r.args());
        }
    }
    fn flush(&self) {}
}

pub fn init_logging(verbose: bool) {
    let logger: &'static StderrLog = Box::leak(Box::new(StderrLog { verbose }));
    if log::set_logger(logger).is_ok() {
        log::set_max_level(if verbose {
            log::LevelFilter::Debug
        } else {
            log::LevelFilter::Warn
        });
    }
}
