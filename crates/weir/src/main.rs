//! The `weir` binary: the command line of the `weir` library.

fn main() -> std::process::ExitCode {
    weir::cli_main(std::env::args_os())
}
