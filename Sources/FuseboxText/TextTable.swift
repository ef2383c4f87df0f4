/// A plain-text table: columns as wide as their widest cell, left- or
/// right-aligned, joined by a separator. The one renderer behind `ctl
/// status`, the `analyze` summary and the `simulate` table. A left-aligned
/// last column is not padded, so no line ends in spaces.
public struct TextTable: Sendable {
    public enum Alignment: Sendable {
        case left
        case right
    }

    public var rows: [[String]]
    /// Per column; columns past the list are left-aligned.
    public var alignments: [Alignment]
    public var separator: String

    public init(_ rows: [[String]], alignments: [Alignment] = [], separator: String = "  ") {
        self.rows = rows
        self.alignments = alignments
        self.separator = separator
    }

    /// The first column left-aligned, every other right-aligned (figures).
    public static func figures(_ rows: [[String]], separator: String = "  ") -> TextTable {
        let columns = rows.map(\.count).max() ?? 0
        return TextTable(rows, alignments: [.left] + Array(repeating: .right, count: max(0, columns - 1)), separator: separator)
    }

    public func render() -> String {
        let columns = rows.map(\.count).max() ?? 0
        let widths = (0..<columns).map { column in rows.map { column < $0.count ? $0[column].count : 0 }.max() ?? 0 }
        return rows.map { row in
            row.enumerated().map { column, cell in
                let pad = String(repeating: " ", count: max(0, widths[column] - cell.count))
                switch column < alignments.count ? alignments[column] : .left {
                case .right: return pad + cell
                case .left: return column == row.count - 1 ? cell : cell + pad
                }
            }.joined(separator: separator)
        }.joined(separator: "\n")
    }
}
