//! `homelab-docs man [--out DIR]` writes the man pages (default: man/ of the
//! workspace); `homelab-docs completions --out DIR` writes bash, zsh and fish
//! completions for every tool.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use clap_complete::Shell;

#[derive(Parser)]
#[command(
    name = "homelab-docs",
    version,
    about = "Render man pages and shell completions for homelab-tools"
)]
struct Cli {
    #[command(subcommand)]
    what: What,
}

#[derive(Subcommand)]
enum What {
    /// Write every tool's man page
    Man {
        /// Directory to write into (default: the workspace's man/)
        #[arg(long, value_name = "DIR")]
        out: Option<PathBuf>,
    },
    /// Write bash, zsh and fish completions for every tool
    Completions {
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
    },
}

fn workspace_man_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../man")
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.what {
        What::Man { out } => write_man(&out.unwrap_or_else(workspace_man_dir)),
        What::Completions { out } => write_completions(&out),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("homelab-docs: {e}");
            ExitCode::from(73)
        }
    }
}

fn write_man(dir: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    for (name, text) in homelab_docs::render_all()? {
        std::fs::write(dir.join(&name), text)?;
        println!("{}", dir.join(name).display());
    }
    Ok(())
}

fn write_completions(dir: &Path) -> std::io::Result<()> {
    for shell in [Shell::Bash, Shell::Zsh, Shell::Fish] {
        let sub = dir.join(shell.to_string());
        std::fs::create_dir_all(&sub)?;
        for (file, text) in homelab_docs::completions(shell) {
            let path = sub.join(file);
            std::fs::write(&path, text)?;
            println!("{}", path.display());
        }
    }
    Ok(())
}
