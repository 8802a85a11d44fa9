/// Facts about this build of Kiln that every stage reports (artifact `producer`, `--version`).
public enum Kiln {
    public static let version = "0.1.0"
}
