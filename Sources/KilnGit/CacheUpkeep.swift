import CLibGit2
import Foundation
import KilnCore

extension GitRepository {
    /// Removes the references matching `glob` (`refs/pipelines/*`) other than
    /// those in `keeping`, and returns how many went. Many local refs slow
    /// every later fetch down (libgit2 issue 5271: the negotiation offers them all).
    public func removeReferences(matching glob: String, keeping: Set<String>) throws -> Int {
        var iterator: OpaquePointer?
        try GitError.check(git_reference_iterator_glob_new(&iterator, pointer, glob), "list the refs \(glob)")
        var names: [String] = []
        var name: UnsafePointer<CChar>?
        while git_reference_next_name(&name, iterator) == 0, let name {
            let text = String(cString: name)
            if !keeping.contains(text) { names.append(text) }
        }
        git_reference_iterator_free(iterator)
        for name in names {
            try GitError.check(git_reference_remove(pointer, name), "remove the ref \(name)")
        }
        return names.count
    }

    /// The pack files the object database holds (one more per fetch).
    public var packCount: Int {
        let folder = (gitDirectory as NSString).appendingPathComponent("objects/pack")
        return ((try? FileManager.default.contentsOfDirectory(atPath: folder)) ?? []).filter { $0.hasSuffix(".pack") }
            .count
    }

    /// Writes every object reachable from HEAD and the refs into one new
    /// pack, then removes the packs and loose objects it replaces (the
    /// repository is Kiln's: nothing else writes into it). `git repack -a -d`,
    /// without `-f`: the deltas the server sent are kept where libgit2 can.
    /// Returns the number of packs replaced.
    @discardableResult
    public func consolidatePacks() throws -> Int {
        let objects = (gitDirectory as NSString).appendingPathComponent("objects")
        let packFolder = (objects as NSString).appendingPathComponent("pack")
        let fileManager = FileManager.default
        let before = Set(
            ((try? fileManager.contentsOfDirectory(atPath: packFolder)) ?? []).filter {
                $0.hasPrefix("pack-") && ($0.hasSuffix(".pack") || $0.hasSuffix(".idx") || $0.hasSuffix(".rev"))
            })
        let looseFolders = ((try? fileManager.contentsOfDirectory(atPath: objects)) ?? []).filter {
            $0.count == 2 && $0.allSatisfy(\.isHexDigit)
        }
        var walk: OpaquePointer?
        try GitError.check(git_revwalk_new(&walk, pointer), "prepare a walk of the history")
        defer { git_revwalk_free(walk) }
        try GitError.check(git_revwalk_push_head(walk), "walk from HEAD")
        try GitError.check(git_revwalk_push_glob(walk, "refs/*"), "walk from the refs")
        var builder: OpaquePointer?
        try GitError.check(git_packbuilder_new(&builder, pointer), "prepare a pack")
        defer { git_packbuilder_free(builder) }
        git_packbuilder_set_threads(builder, 0)
        try GitError.check(git_packbuilder_insert_walk(builder, walk), "collect the objects to pack")
        // The walk peels annotated tags to their commits: the tag objects go in by themselves.
        for tag in try annotatedTags() {
            var oid = tag
            try GitError.check(git_packbuilder_insert(builder, &oid, nil), "pack a tag")
        }
        try GitError.check(
            git_packbuilder_write(builder, packFolder, 0, nil, nil), "write the consolidated pack in \(packFolder)")
        let written = String(cString: git_packbuilder_name(builder))
        var replaced = 0
        for name in before where !name.contains(written) {
            try fileManager.removeItem(atPath: (packFolder as NSString).appendingPathComponent(name))
            if name.hasSuffix(".pack") { replaced += 1 }
        }
        for folder in looseFolders {
            try? fileManager.removeItem(atPath: (objects as NSString).appendingPathComponent(folder))
        }
        var odb: OpaquePointer?
        if git_repository_odb(&odb, pointer) == 0 {
            _ = git_odb_refresh(odb)
            git_odb_free(odb)
        }
        return replaced
    }

    /// The ids of the annotated tag objects `refs/tags/*` point at.
    func annotatedTags() throws -> [git_oid] {
        var iterator: OpaquePointer?
        try GitError.check(git_reference_iterator_glob_new(&iterator, pointer, "refs/tags/*"), "list the tags")
        defer { git_reference_iterator_free(iterator) }
        var tags: [git_oid] = []
        var reference: OpaquePointer?
        while git_reference_next(&reference, iterator) == 0 {
            defer { git_reference_free(reference) }
            guard let target = git_reference_target(reference) else { continue }
            var oid = target.pointee
            var object: OpaquePointer?
            if git_object_lookup(&object, pointer, &oid, GIT_OBJECT_TAG) == 0 {
                git_object_free(object)
                tags.append(oid)
            }
        }
        return tags
    }
}

extension GitRepository {
    var shallowFile: String { (gitDirectory as NSString).appendingPathComponent("shallow") }

    /// The commits the `shallow` file lists: those whose parents the
    /// repository does not have (gitrepository-layout(5), "shallow").
    public func shallowBoundary() -> Set<String> {
        guard let text = try? String(contentsOfFile: shallowFile, encoding: .utf8) else { return [] }
        return Set(text.split(separator: "\n").map(String.init).filter { $0.count == 40 })
    }

    /// libgit2 1.8 rewrites the `shallow` file from the server's answer to one
    /// fetch alone: a fetch without a depth into a shallow repository empties
    /// it, and a deepening fetch keeps only the new cut, though the commits
    /// below the earlier boundary are still missing (the next walk of the
    /// history then fails: "object not found"). This puts back every commit,
    /// listed before or now, whose parents are not all in the object database.
    public func restoreShallowBoundary(_ before: Set<String>) throws {
        let candidates = before.union(shallowBoundary())
        guard !candidates.isEmpty else { return }
        var odb: OpaquePointer?
        try GitError.check(git_repository_odb(&odb, pointer), "open the object database")
        defer { git_odb_free(odb) }
        var boundary: [String] = []
        for sha in candidates.sorted() {
            var oid = try Self.oid(sha)
            var object: OpaquePointer?
            guard git_odb_read(&object, odb, &oid) == 0 else { continue }
            defer { git_odb_object_free(object) }
            let size = git_odb_object_size(object)
            let bytes = UnsafeRawBufferPointer(start: git_odb_object_data(object), count: size)
            // A commit object's header: "tree ...", then one "parent <id>" line per parent.
            let header = String(decoding: bytes.prefix { $0 != 0 }, as: UTF8.self).split(
                separator: "\n", omittingEmptySubsequences: false
            ).prefix { !$0.isEmpty }
            let parents = header.filter { $0.hasPrefix("parent ") }.map { String($0.dropFirst("parent ".count)) }
            let missing = try parents.contains { parent in
                var parentID = try Self.oid(parent)
                return git_odb_exists(odb, &parentID) == 0
            }
            if missing { boundary.append(sha) }
        }
        if boundary.isEmpty {
            _ = unlink(shallowFile)
        } else {
            try Data((boundary.joined(separator: "\n") + "\n").utf8).write(
                to: URL(fileURLWithPath: shallowFile), options: .atomic)
        }
    }
}
