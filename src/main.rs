//! The `cpid` binary: everything it does is in [`cli`].

mod cli;

fn main() -> anyhow::Result<()> {
    cli::run()
}
