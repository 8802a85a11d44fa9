/// The `kiln:` tags: what Kiln writes on AWS resources so that anyone (and
/// Kiln's later stages) can tell which application, release and commit a
/// resource holds. One vocabulary for the bake and the rotation.
public enum KilnTag {
    // On every image kiln-bake makes or reuses, and on its snapshots.
    public static let application = "kiln:app"
    public static let role = "kiln:role"
    public static let version = "kiln:version"
    public static let commit = "kiln:commit"
    public static let pipeline = "kiln:pipeline"
    public static let bakeKey = "kiln:bake-key"
    public static let sourceAMI = "kiln:source-ami"
    public static let builtAt = "kiln:built-at"

    // On instances, through the launch template version's TagSpecifications
    // (kiln-rotate): the release, the application and its version.
    public static let release = "kiln:release"
    /// Put by kiln-rotate on old instances before it detaches them from their
    /// group (the value is the group's name), so that a run killed between the
    /// detach and the termination leaves instances the next run can find
    /// and terminate: once detached, the group no longer names them.
    public static let retiring = "kiln:retiring"

    // On Auto Scaling groups (kiln-rotate): the last rotation's launch
    // template versions (`1>2`, for `kiln-rotate rollback`), the release the
    // group runs, and the journal of a rotation under way.
    public static let lastRotation = "kiln:last-rotation"
    public static let rotationJournalPrefix = "kiln:rotation:"

    /// Kiln 0.1.0 tagged instances `kiln:application`; new launch template
    /// versions write `kiln:app` and drop the old key.
    public static let legacyApplication = "kiln:application"

    /// The application a set of tags names, under either key.
    public static func application(in tags: [String: String]) -> String? {
        tags[application] ?? tags[legacyApplication]
    }
}
