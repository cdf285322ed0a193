/// The product's name and version, as vtepd and vtepsh report them (`show system`,
/// `show version`).
public enum Product {
    public static let name = "VTEP Gateway"
    public static let version = "0.1.0"
}
