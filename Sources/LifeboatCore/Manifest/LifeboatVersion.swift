/// Lifeboat's own version, printed by `lifeboat --version` and written into every manifest.
public enum LifeboatVersion {
  public static let current = "0.1.0"
}
