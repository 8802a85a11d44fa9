import CLibGit2
import Foundation

/// `git describe --tags` the way git computes it (git's builtin/describe.c, `describe_commit`; libgit2's
/// describe.c is a port of the same): the tags mapped to their commits once, then a walk from the commit in
/// commit-date order that gives up at the eleventh tagged commit it meets (`--candidates`, default 10) or,
/// once an annotated tag is among the candidates, when nothing is left to walk; the candidate with the fewest
/// commits not reachable from it wins (the first found on a tie), and its distance is finished by walking on
/// only until every commit left is reachable from it. The walk reads only commits (no trees, no other refs).
struct TagDescriber {
    /// A tag as git ranks it for one commit (`struct commit_name`): annotated ones (prio 2) before lightweight
    /// ones (prio 1); of two annotated tags on one commit, the newer tagger date.
    struct Name {
        let text: String
        let annotated: Bool
        let taggerTime: Int64
    }

    struct Candidate {
        let name: Name
        var depth: Int
        let foundOrder: Int
        let flagWithin: UInt32
    }

    /// git's `SEEN` object flag (revision.h, bit 0); the candidates' `flag_within` bits start above it.
    static let seen: UInt32 = 1
    /// `--candidates` default (builtin/describe.c, `max_candidates = 10`).
    static let maxCandidates = 10

    let repository: OpaquePointer
    var names: [String: Name] = [:]
    var flags: [String: UInt32] = [:]
    var commits: [String: (time: Int64, parents: [String])] = [:]

    init(repository: OpaquePointer) {
        self.repository = repository
        loadNames()
    }

    /// builtin/describe.c `get_name` and `replace_name`, over `refs/tags/*` in ref-name order (git's
    /// `for_each_rawref`): a tag that peels to no commit is left out.
    mutating func loadNames() {
        var iterator: OpaquePointer?
        guard git_reference_iterator_glob_new(&iterator, repository, "refs/tags/*") == 0 else { return }
        var refs: [String] = []
        var name: UnsafePointer<CChar>?
        while git_reference_next_name(&name, iterator) == 0, let name { refs.append(String(cString: name)) }
        git_reference_iterator_free(iterator)
        for ref in refs.sorted(by: { $0.utf8.lexicographicallyPrecedes($1.utf8) }) {
            var target = git_oid()
            guard git_reference_name_to_id(&target, repository, ref) == 0 else { continue }
            var object: OpaquePointer?
            guard git_object_lookup(&object, repository, &target, GIT_OBJECT_ANY) == 0 else { continue }
            defer { git_object_free(object) }
            var peeled: OpaquePointer?
            guard git_object_peel(&peeled, object, GIT_OBJECT_COMMIT) == 0 else { continue }
            var peeledID = git_object_id(peeled).pointee
            let commit = GitRepository.hex(&peeledID)
            git_object_free(peeled)
            let candidate: Name
            if git_object_type(object) == GIT_OBJECT_TAG {
                // The name the tag object carries, as git prints it (`append_name` uses `tag->tag`).
                let tagName = git_tag_name(object).map { String(cString: $0) } ?? String(ref.dropFirst(10))
                let time = git_tag_tagger(object).map { $0.pointee.when.time } ?? 0
                candidate = Name(text: tagName, annotated: true, taggerTime: time)
            } else {
                candidate = Name(text: String(ref.dropFirst("refs/tags/".count)), annotated: false, taggerTime: 0)
            }
            if let existing = names[commit] {
                let replace =
                    (!existing.annotated && candidate.annotated)
                    || (existing.annotated && candidate.annotated && existing.taggerTime < candidate.taggerTime)
                if !replace { continue }
            }
            names[commit] = candidate
        }
    }

    /// A commit's committer time and parents (those the repository has: a shallow history's boundary
    /// commits have none, as git's grafts make them).
    mutating func node(_ sha: String) -> (time: Int64, parents: [String]) {
        if let known = commits[sha] { return known }
        var oid = git_oid()
        var commit: OpaquePointer?
        guard git_oid_fromstr(&oid, sha) == 0, git_commit_lookup(&commit, repository, &oid) == 0 else {
            commits[sha] = (0, [])
            return (0, [])
        }
        defer { git_commit_free(commit) }
        var parents: [String] = []
        for index in 0..<git_commit_parentcount(commit) {
            guard var id = git_commit_parent_id(commit, index)?.pointee else { continue }
            let parent = GitRepository.hex(&id)
            var object: OpaquePointer?
            if git_commit_lookup(&object, repository, &id) == 0 {
                git_commit_free(object)
                parents.append(parent)
            }
        }
        let result = (time: Int64(git_commit_time(commit)), parents: parents)
        commits[sha] = result
        return result
    }

    /// commit.c `commit_list_insert_by_date`: before the first commit that is older; after those as old.
    mutating func insertByDate(_ sha: String, into list: inout [String]) {
        let time = node(sha).time
        var index = 0
        while index < list.count, node(list[index]).time >= time { index += 1 }
        list.insert(sha, at: index)
    }

    /// Marks and queues `sha`'s parents with its flags (the walk's inner loop in `describe_commit`).
    mutating func queueParents(of sha: String, into list: inout [String]) {
        let own = flags[sha] ?? 0
        for parent in node(sha).parents {
            let theirs = flags[parent] ?? 0
            if theirs & Self.seen == 0 { insertByDate(parent, into: &list) }
            flags[parent] = theirs | own
        }
    }

    /// `git describe --tags <sha>`, the abbreviated id aside: (tag, distance), distance 0 for a tagged commit.
    mutating func describe(_ sha: String) -> (name: String, depth: Int)? {
        if let exact = names[sha] { return (exact.text, 0) }
        flags = [sha: Self.seen]
        var list = [sha]
        var candidates: [Candidate] = []
        var annotatedCount = 0
        var seenCommits = 0
        var gaveUpOn: String?
        while !list.isEmpty {
            let commit = list.removeFirst()
            seenCommits += 1
            if let name = names[commit] {
                if candidates.count < Self.maxCandidates {
                    let flag = UInt32(1) << UInt32(candidates.count + 1)
                    candidates.append(
                        Candidate(
                            name: name, depth: seenCommits - 1, foundOrder: candidates.count + 1, flagWithin: flag))
                    flags[commit, default: 0] |= flag
                    if name.annotated { annotatedCount += 1 }
                } else {
                    gaveUpOn = commit
                    break
                }
            }
            let own = flags[commit] ?? 0
            for index in candidates.indices where own & candidates[index].flagWithin == 0 {
                candidates[index].depth += 1
            }
            if annotatedCount > 0 && list.isEmpty { break }
            queueParents(of: commit, into: &list)
        }
        guard !candidates.isEmpty else { return nil }
        // `compare_pt`: fewer commits first, then the order found; a stable sort keeps git's qsort's answer for
        // the first element, the only one used.
        var best = candidates.enumerated().min { lhs, rhs in
            (lhs.element.depth, lhs.element.foundOrder, lhs.offset) < (
                rhs.element.depth, rhs.element.foundOrder, rhs.offset
            )
        }!.element
        if let gaveUpOn {
            insertByDate(gaveUpOn, into: &list)
        }
        // `finish_depth_computation`.
        while !list.isEmpty {
            let commit = list.removeFirst()
            if (flags[commit] ?? 0) & best.flagWithin != 0 {
                if list.allSatisfy({ (flags[$0] ?? 0) & best.flagWithin != 0 }) { break }
            } else {
                best.depth += 1
            }
            queueParents(of: commit, into: &list)
        }
        return (best.name.text, best.depth)
    }
}
