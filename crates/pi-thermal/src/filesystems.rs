//! Size and free space of every real mount: the mount table from procfs, sizes from
//! statvfs. Pseudo filesystems are skipped with node_exporter's default lists; a
//! network mount is asked in a thread with a time limit, so a dead NAS cannot hang the
//! run.

use std::path::PathBuf;
use std::sync::mpsc;
use std::time::Duration;

use homelab_core::Root;
use procfs::FromRead;
use procfs::process::MountInfos;

use crate::sample::Filesystem;

/// Filesystem types that hold no user data (node_exporter's default exclusions).
const PSEUDO_FS: &[&str] = &[
    "autofs",
    "binfmt_misc",
    "bpf",
    "cgroup",
    "cgroup2",
    "configfs",
    "debugfs",
    "devpts",
    "devtmpfs",
    "efivarfs",
    "fusectl",
    "hugetlbfs",
    "iso9660",
    "mqueue",
    "nsfs",
    "overlay",
    "proc",
    "procfs",
    "pstore",
    "rpc_pipefs",
    "securityfs",
    "selinuxfs",
    "squashfs",
    "erofs",
    "sysfs",
    "tracefs",
    "ramfs",
];

/// Mount points under which nothing is the machine's own storage.
const PSEUDO_MOUNTS: &[&str] = &[
    "/dev",
    "/proc",
    "/sys",
    "/run/credentials",
    "/var/lib/docker/",
    "/var/lib/containers/storage/",
    "/run/docker/netns",
];

const NETWORK_FS: &[&str] = &[
    "nfs",
    "nfs4",
    "cifs",
    "smb3",
    "smbfs",
    "9p",
    "ceph",
    "glusterfs",
    "fuse.sshfs",
    "fuse.rclone",
    "davfs",
];

const STATVFS_LIMIT: Duration = Duration::from_secs(2);

/// One entry of the mount table, unescaped.
#[derive(Debug, Clone, PartialEq)]
pub struct Mount {
    pub mountpoint: String,
    pub device: String,
    pub fstype: String,
}

pub fn read(root: &Root, errors: &mut Vec<String>) -> Vec<Filesystem> {
    let mounts = match read_mounts(root) {
        Ok(m) => m,
        Err(e) => {
            errors.push(e);
            return Vec::new();
        }
    };
    let mut out = Vec::new();
    for m in real_mounts(mounts) {
        match statvfs(root.path(&m.mountpoint), NETWORK_FS.contains(&m.fstype.as_str())) {
            Ok((size, avail)) => out.push(Filesystem {
                mountpoint: m.mountpoint,
                device: m.device,
                fstype: m.fstype,
                size_bytes: size,
                avail_bytes: avail,
            }),
            Err(e) => errors.push(format!("statvfs {}: {e}", m.mountpoint)),
        }
    }
    out
}

/// The mount table: pid 1's on another root (a container's `--root /host` sees the
/// host's), our own on the real root.
fn read_mounts(root: &Root) -> Result<Vec<Mount>, String> {
    let candidates: &[&str] = if root.is_host() {
        &["/proc/self/mountinfo"]
    } else {
        &["/proc/1/mountinfo", "/proc/self/mountinfo"]
    };
    let mut last = String::new();
    for path in candidates {
        match root.read_limited(path, 16 * 1024 * 1024) {
            Ok(bytes) => return parse_mountinfo(&bytes).map_err(|e| format!("{path}: {e}")),
            Err(e) => last = e.to_string(),
        }
    }
    Err(last)
}

pub fn parse_mountinfo(bytes: &[u8]) -> Result<Vec<Mount>, String> {
    if !bytes.is_ascii() {
        return Err("not the kernel's format (non-ASCII bytes)".into());
    }
    let infos = MountInfos::from_read(bytes).map_err(|_| "not the kernel's format".to_string())?;
    Ok(infos
        .into_iter()
        .map(|m| Mount {
            mountpoint: unescape(&m.mount_point.to_string_lossy()),
            device: unescape(m.mount_source.as_deref().unwrap_or("none")),
            fstype: m.fs_type,
        })
        .collect())
}

/// Keeps mounts that hold storage: no pseudo filesystems, and for a mount point
/// mounted over several times only the last (visible) one.
pub fn real_mounts(mounts: Vec<Mount>) -> Vec<Mount> {
    let mut out: Vec<Mount> = Vec::new();
    for m in mounts {
        if PSEUDO_FS.contains(&m.fstype.as_str()) || is_pseudo_mountpoint(&m.mountpoint) {
            continue;
        }
        out.retain(|o| o.mountpoint != m.mountpoint);
        out.push(m);
    }
    out
}

fn is_pseudo_mountpoint(mp: &str) -> bool {
    PSEUDO_MOUNTS.iter().any(|p| {
        let bare = p.trim_end_matches('/');
        if p.ends_with('/') {
            mp.starts_with(p) // only what is below, e.g. overlay layers
        } else {
            mp == bare || mp.starts_with(&format!("{bare}/"))
        }
    })
}

/// Undoes the kernel's octal escapes in mountinfo (`\040` is a space).
pub fn unescape(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' && i + 3 < b.len() && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c)) {
            let v = (b[i + 1] - b'0') as u32 * 64 + (b[i + 2] - b'0') as u32 * 8 + (b[i + 3] - b'0') as u32;
            if let Ok(byte) = u8::try_from(v) {
                out.push(byte);
                i += 4;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// (size, available to unprivileged users) in bytes.
fn statvfs(path: PathBuf, network: bool) -> Result<(u64, u64), String> {
    // The field types are u32 on 32-bit targets (armhf Raspberry Pi OS).
    #[allow(clippy::useless_conversion)]
    let call = move || {
        nix::sys::statvfs::statvfs(&path)
            .map(|s| {
                let frag = u64::from(s.fragment_size());
                (
                    u64::from(s.blocks()) * frag,
                    u64::from(s.blocks_available()) * frag,
                )
            })
            .map_err(|e| e.desc().to_lowercase())
    };
    if !network {
        return call();
    }
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(call());
    });
    rx.recv_timeout(STATVFS_LIMIT)
        .unwrap_or_else(|_| Err("no answer within 2s (a hung network mount?)".into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    const MOUNTINFO: &str = "\
22 27 0:21 / /proc rw,relatime - proc proc rw
27 1 179:2 / / rw,noatime - ext4 /dev/mmcblk0p2 rw
28 27 179:1 / /boot/firmware rw,relatime - vfat /dev/mmcblk0p1 rw
29 27 0:25 / /run rw,nosuid - tmpfs tmpfs rw,size=806960k
30 27 259:2 / /mnt/my\\040disk rw - ext4 /dev/nvme0n1p2 rw
31 27 0:40 / /var/lib/docker/vfs/dir/abc rw - ext4 /dev/mmcblk0p2 rw
32 27 0:41 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw
33 27 0:42 / /mnt/nas rw - nfs4 nas:/export rw
34 27 179:1 / /boot/firmware rw,relatime - vfat /dev/sda1 rw
";

    #[test]
    fn keeps_real_mounts_once_and_unescapes() {
        let m = real_mounts(parse_mountinfo(MOUNTINFO.as_bytes()).unwrap());
        let points: Vec<&str> = m.iter().map(|m| m.mountpoint.as_str()).collect();
        assert_eq!(
            points,
            ["/", "/run", "/mnt/my disk", "/mnt/nas", "/boot/firmware"]
        );
        assert_eq!(m.last().unwrap().device, "/dev/sda1");
    }

    #[test]
    fn garbage_mountinfo_is_an_error() {
        assert!(parse_mountinfo(b"not a mount table\n").is_err());
        assert!(parse_mountinfo(&[0xff, 0xfe]).is_err());
        assert_eq!(parse_mountinfo(b"").unwrap(), vec![]);
    }

    #[test]
    fn unescapes_octal() {
        assert_eq!(unescape("/a\\040b\\011c"), "/a b\tc");
        assert_eq!(unescape("/a\\0"), "/a\\0");
        assert_eq!(unescape("\\"), "\\");
    }

    #[test]
    fn statvfs_of_root_is_sane() {
        let (size, avail) = statvfs(PathBuf::from("/"), false).unwrap();
        assert!(size > 0 && avail <= size);
        assert!(statvfs(PathBuf::from("/nonexistent/x"), true).is_err());
    }
}
