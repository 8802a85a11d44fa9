import Foundation
import KilnCore

/// Secrets written into a template's own text. User data is readable by
/// anyone who may describe the instance, so a secret there is refused as a
/// secret value is. The message names the line, never the secret.
enum TemplateSecrets {
    enum Kind: String {
        case gitLabToken = "a GitLab token (glpat-, glcbt-)"
        case awsSecretKey = "an AWS secret access key"
        case maskedSecret = "a masked secret of this job (as is, percent-encoded or in base64)"
    }

    /// GitLab's token prefixes: personal access tokens (`glpat-`) and CI/CD
    /// job tokens (`glcbt-`), followed by their random part ("Token prefixes",
    /// GitLab's security documentation).
    static let gitLabPrefixes = ["glpat-", "glcbt-"]
    static let gitLabTokenCharacters = Set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-.")
    /// A prefix followed by fewer characters is a mention ("glpat- tokens"), not a token.
    static let gitLabMinimumRandomPart = 16

    /// An AWS secret access key is 40 characters of base64's alphabet
    /// (IAM's AccessKey.SecretAccessKey); a run of exactly 40 that mixes
    /// upper case, lower case and digits (a commit hash is lower-case hex)
    /// and stands alone (not inside a longer base64 text, an SSH key) is one;
    /// one that starts with `/` is taken for an absolute path
    /// (`/opt/Acme9/Service/Current/Bin/RunNow123`), at the cost of missing
    /// the 1 in 64 keys that start so.
    static let awsKeyLength = 40
    static let base64Alphabet = Set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/")

    /// The first secret in `text`: its kind and its UTF-8 offset.
    static func find(in text: String, mask: SecretMask) -> (kind: Kind, offset: Int)? {
        var found: [(kind: Kind, offset: Int)] = []
        if let offset = mask.firstOccurrence(in: text) { found.append((.maskedSecret, offset)) }
        let characters = Array(text)
        var offsets: [Int] = []  // UTF-8 offset of each character
        var offset = 0
        for character in characters {
            offsets.append(offset)
            offset += character.utf8.count
        }
        var index = 0
        while index < characters.count {
            if let prefix = gitLabPrefixes.first(where: { matches($0, characters, at: index) }) {
                let start = index + prefix.count
                var end = start
                while end < characters.count && gitLabTokenCharacters.contains(characters[end]) { end += 1 }
                if end - start >= gitLabMinimumRandomPart {
                    found.append((.gitLabToken, offsets[index]))
                    break
                }
            }
            index += 1
        }
        index = 0
        while index < characters.count {
            guard base64Alphabet.contains(characters[index]) else {
                index += 1
                continue
            }
            var end = index
            while end < characters.count && base64Alphabet.contains(characters[end]) { end += 1 }
            let run = characters[index..<end]
            let padded = end < characters.count && characters[end] == "="
            if run.count == awsKeyLength && !padded && run.first != "/" && run.contains(where: \.isUppercase)
                && run.contains(where: \.isLowercase) && run.contains(where: \.isNumber)
            {
                found.append((.awsSecretKey, offsets[index]))
                break
            }
            index = end
        }
        return found.min { $0.offset < $1.offset }
    }

    private static func matches(_ prefix: String, _ characters: [Character], at index: Int) -> Bool {
        let prefix = Array(prefix)
        return index + prefix.count <= characters.count && Array(characters[index..<(index + prefix.count)]) == prefix
    }

    /// Refuses a template that holds a secret, naming its file and line.
    static func check(_ text: String, template: String, mask: SecretMask, readItAt example: String) throws {
        guard let (kind, offset) = find(in: text, mask: mask) else { return }
        let line = Array(text.utf8)[..<offset].filter { $0 == UInt8(ascii: "\n") }.count + 1
        throw KilnError.badConfiguration(
            """
            \(template):\(line): the template holds \(kind.rawValue) written literally: user data is readable by \
            anyone who may describe the instance (ec2:DescribeInstanceAttribute) and from the instance metadata. \
            Store it in SSM Parameter Store (SecureString) or Secrets Manager, and read it at boot, e.g. \(example)
            """)
    }
}
