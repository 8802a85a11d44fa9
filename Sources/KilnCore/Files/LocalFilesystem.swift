import CKilnLinux
import Foundation

/// A filesystem on this machine whose inodes the kernel stamps from its own
/// clock, told by statfs(2)'s `f_type` (the magic numbers of linux/magic.h);
/// nil for any other (NFS, CIFS, FUSE, ...), whose timestamps come from
/// elsewhere.
public enum LocalFilesystem: CustomStringConvertible, Sendable {
    case ext, xfs, btrfs, tmpfs, overlay

    public init?(of path: String) {
        switch CKilnLinux_statfs_type(path) {
        case 0xEF53: self = .ext
        case 0x5846_5342: self = .xfs
        case 0x9123_683E: self = .btrfs
        case 0x0102_1994: self = .tmpfs
        case 0x794C_7630: self = .overlay
        default: return nil
        }
    }

    public var description: String {
        switch self {
        case .ext: "ext2/3/4"
        case .xfs: "XFS"
        case .btrfs: "Btrfs"
        case .tmpfs: "tmpfs"
        case .overlay: "overlayfs"
        }
    }
}
