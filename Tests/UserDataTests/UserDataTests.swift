import Foundation
import KilnArtifacts
import KilnCore
import KilnTestSupport
import Testing

/// A project with image.json from the bake, kiln.yml and templates.
struct UserDataProject {
    let folder = TemporaryDirectory("kiln-userdata")
    var path: String { folder.path }

    init(kilnYML: String, templates: [String: String], terraform: String? = nil) throws {
        try kilnYML.write(toFile: folder.file("kiln.yml"), atomically: true, encoding: .utf8)
        for (name, text) in templates {
            let full = folder.file(name)
            try FileManager.default.createDirectory(
                atPath: (full as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
            try text.write(toFile: full, atomically: true, encoding: .utf8)
        }
        if let terraform { try terraform.write(toFile: folder.file("outputs.json"), atomically: true, encoding: .utf8) }
        let image = ImageResult(
            application: "demo", applicationVersion: "v1.4.0", commit: String(repeating: "c", count: 40), role: .app,
            name: "demo-app-v1.4.0-20261130T120000Z", region: "us-east-1", amiID: "ami-0123456789abcdef0",
            amis: ["us-east-1": "ami-0123456789abcdef0"], sourceAMI: "ami-0fedcba9876543210", bakeKey: "k",
            outcome: .baked,
            packerSeconds: 1, pipelineID: "9")
        try ArtifactStore(directory: folder.file("kiln"), producer: Producer(name: "kiln-bake")).write(image)
    }

    func read(_ name: String) -> String? { try? String(contentsOfFile: folder.file(name), encoding: .utf8) }
    func data(_ name: String) -> Data? { FileManager.default.contents(atPath: folder.file(name)) }
    func json(_ environment: String = "test") -> [String: Any] {
        guard let data = data("kiln/userdata-\(environment).json") else { return [:] }
        return (try? JSONSerialization.jsonObject(with: data) as? [String: Any]) ?? [:]
    }
}

func runUserData(
    _ project: UserDataProject, _ arguments: [String] = ["--environment", "test"],
    environment extra: [String: String] = [:]
) throws -> (code: Int32?, output: String) {
    var environment = [
        "PATH": "/usr/bin:/bin", "HOME": NSTemporaryDirectory(), "CI_PROJECT_DIR": project.path, "CI_PIPELINE_ID": "42",
    ]
    environment.merge(extra) { $1 }
    let run = try runProduct("kiln-userdata", arguments, environment: environment)
    return (run.code, run.output)
}

func run(
    _ executable: String, _ arguments: [String], environment: [String: String] = ["PATH": "/usr/bin:/bin"]
) throws -> (ProcessResult, String) {
    let run = try runCommand(Command(executable, arguments, environment: environment), captureStandardOutput: true)
    return (run.result, run.output)
}

/// Values that would run commands or break the file if pasted in as text.
let hostile =
    "x'; touch MARKER; echo '$(touch MARKER)`touch MARKER`\"; touch MARKER; \"\n$(touch MARKER)\\; touch MARKER #"

@Suite struct ShellUserDataTests {
    let yml = """
        environments:
          test:
            userdata:
              template: deploy/user_init.sh
            variables:
              GREETING: {env: GREETING}
              PLAIN: plain words
        """

    @Test func hostileValuesExecuteNothingAndArriveIntact() throws {
        // The same hostile value as a bare word, in single quotes, in double
        // quotes and in a comment; the script writes what it received.
        let project = try UserDataProject(
            kilnYML: yml,
            templates: [
                "deploy/user_init.sh": """
                #!/bin/bash
                set -eu
                # release {{ kiln.version }} says {{ GREETING }}
                bare={{ GREETING }}
                single='{{ GREETING }}'
                double="{{ GREETING }}"
                printf '%s' "$bare" > out-bare
                printf '%s' "$single" > out-single
                printf '%s' "$double" > out-double
                printf '%s' {{ kiln.ami_id }} > out-ami
                echo {{ PLAIN }} > out-plain
                """
            ])
        let (code, output) = try runUserData(project, environment: ["GREETING": hostile])
        #expect(code == 0, "\(output)")
        let script = try #require(project.read("kiln/userdata-test.sh"))
        // Run it under bash in its own folder: nothing injected may run.
        let sandbox = TemporaryDirectory("kiln-run")
        try script.write(toFile: sandbox.file("user_init.sh"), atomically: true, encoding: .utf8)
        let (result, text) = try run("/bin/bash", ["-c", "cd '\(sandbox.path)' && bash user_init.sh"])
        #expect(result.termination.succeeded, "\(text)")
        #expect(!FileManager.default.fileExists(atPath: sandbox.file("MARKER")), "an injected command ran")
        for name in ["out-bare", "out-single", "out-double"] {
            #expect((try? String(contentsOfFile: sandbox.file(name), encoding: .utf8)) == hostile, "\(name)")
        }
        #expect((try? String(contentsOfFile: sandbox.file("out-ami"), encoding: .utf8)) == "ami-0123456789abcdef0")
        #expect((try? String(contentsOfFile: sandbox.file("out-plain"), encoding: .utf8)) == "plain words\n")
        let json = project.json()
        #expect(json["format"] as? String == "shell")
        #expect(json["sha256"] as? String == SHA256Digest.hex(of: Data(script.utf8)))
        let variables = json["variables"] as? [[String: String]] ?? []
        #expect(variables.contains(["name": "GREETING", "source": "variable GREETING"]))
        #expect(variables.contains(["name": "kiln.ami_id", "source": "image.json and the pipeline"]))
        #expect(project.read("kiln/userdata-test.env") == "KILN_USERDATA_SHA256=\(json["sha256"] as? String ?? "")\n")
        #expect(GitLabDotenv.violations(project.read("kiln/userdata-test.env") ?? "x") == [])
    }

    @Test func sameInputsGiveTheSameBytes() throws {
        let project = try UserDataProject(
            kilnYML: yml, templates: ["deploy/user_init.sh": "#!/bin/sh\necho {{ PLAIN }} {{ kiln.commit }}\n"])
        #expect(try runUserData(project, environment: ["GREETING": "g"]).code == 0)
        let first = try #require(project.data("kiln/userdata-test.sh"))
        #expect(try runUserData(project, environment: ["GREETING": "g"]).code == 0)
        #expect(project.data("kiln/userdata-test.sh") == first)
    }

    @Test(arguments: [
        ("#!/bin/sh\ncat <<EOF\n{{ PLAIN }}\nEOF\n", "here-document"),
        ("#!/bin/bash\necho $'{{ PLAIN }}'\n", "$'...'"),
        ("#!/bin/sh\necho \"$(echo {{ PLAIN }})\"\n", "command substitution"),
    ])
    func unsafeShellPlacesAreRefused(template: String, reason: String) throws {
        let project = try UserDataProject(kilnYML: yml, templates: ["deploy/user_init.sh": template])
        let (code, output) = try runUserData(project, environment: ["GREETING": "g"])
        #expect(code == 78, "\(output)")
        #expect(output.contains("deploy/user_init.sh:"))
        #expect(output.contains(reason), "\(output)")
    }

    /// Issue 13, items 15-17: places where no escaping is safe for every
    /// value. Each value below ran its command when the rendered script ran
    /// (backquotes, right after `$`, inside `$(( ))`); now the template is
    /// refused with file:line:column. Should a rendering ever succeed again,
    /// the script is run under bash to show whether the command ran.
    @Test(arguments: [
        ("x=`printf %s {{ V }}`", "a`;touch MARKER;`", "backquotes"),
        ("x=`echo \"{{ V }}\"`", "`touch MARKER`", "backquotes"),
        ("x=${{ V }}", "\\';touch MARKER;#", "right after '$'"),
        ("echo \"db: ${{ V }}\"", "(touch MARKER)", "right after '$'"),
        ("echo $(( 1 + {{ V }} ))", "a[$(touch MARKER)]", "arithmetic"),
        ("(( n = 1 + {{ V }} ))", "a[$(touch MARKER)]", "arithmetic"),
        ("echo \"$(( 1 + {{ V }} ))\"", "a[$(touch MARKER)]", "arithmetic"),
        // The other places bash evaluates arithmetic or code; each ran the
        // command under bash with the values escaped as before.
        ("[[ {{ V }} -eq 1 ]]", "a[$(touch MARKER)]", "[[ ]]"),
        ("echo $[ {{ V }} ]", "a[$(touch MARKER)]", "$[ ] or an array subscript"),
        ("arr=(); arr[{{ V }}]=1", "$(touch MARKER)", "$[ ] or an array subscript"),
        ("let x={{ V }}", "a[$(touch MARKER)]", "'let'"),
        ("eval {{ V }}", "touch MARKER", "'eval'"),
        ("bash -c {{ V }}", "touch MARKER", "'bash -c'"),
        ("trap {{ V }} EXIT", "touch MARKER", "'trap'"),
    ])
    func placesThatRunAValueAreRefused(line: String, value: String, reason: String) throws {
        let yml = """
            environments:
              test:
                userdata: {template: deploy/user_init.sh}
                variables:
                  V: {env: V}
            """
        let project = try UserDataProject(
            kilnYML: yml, templates: ["deploy/user_init.sh": "#!/bin/bash\n\(line)\necho done\n"])
        let (code, output) = try runUserData(project, environment: ["V": value])
        let column = line.distance(from: line.startIndex, to: line.range(of: "{{")!.lowerBound) + 1
        #expect(code == 78, "\(line): \(output)")
        #expect(output.contains("deploy/user_init.sh:2:\(column): {{ V }}"), "\(output)")
        #expect(output.contains(reason), "\(output)")
        #expect(!output.contains("MARKER"), "the value is not echoed: \(output)")
        if code == 0, let script = project.read("kiln/userdata-test.sh") {
            let sandbox = TemporaryDirectory("kiln-run")
            try script.write(toFile: sandbox.file("user_init.sh"), atomically: true, encoding: .utf8)
            _ = try run("/bin/bash", ["-c", "cd '\(sandbox.path)' && bash user_init.sh"])
            #expect(!FileManager.default.fileExists(atPath: sandbox.file("MARKER")), "\(line): the value ran a command")
        }
    }

    /// `declare -i` makes every later assignment to the variable arithmetic:
    /// a template with placeholders that uses it is refused whole.
    @Test func anIntegerAttributeIsRefusedInATemplateWithPlaceholders() throws {
        let yml = "environments:\n  test:\n    userdata: {template: i.sh}\n    variables:\n      V: {env: V}\n"
        let project = try UserDataProject(
            kilnYML: yml, templates: ["i.sh": "#!/bin/bash\ndeclare -i n\nn={{ V }}\n"])
        let (code, output) = try runUserData(project, environment: ["V": "a[$(touch MARKER)]"])
        #expect(code == 78, "\(output)")
        #expect(output.contains("i.sh:2: 'declare -i'"), "\(output)")
    }

    /// Brackets and words that are not arithmetic or code still take values.
    @Test func testBracketsGlobsAndOtherCommandsStillRender() throws {
        let yml = "environments:\n  test:\n    userdata: {template: i.sh}\n    variables:\n      V: {env: V}\n"
        let project = try UserDataProject(
            kilnYML: yml,
            templates: [
                "i.sh":
                    "#!/bin/bash\nif [ {{ V }} = x ]; then echo no; fi\nexport LET={{ V }}\nprintf '%s' {{ V }} > out\n"
            ])
        let (code, output) = try runUserData(project, environment: ["V": "a[$(touch MARKER)]"])
        #expect(code == 0, "\(output)")
        let script = try #require(project.read("kiln/userdata-test.sh"))
        let sandbox = TemporaryDirectory("kiln-run")
        try script.write(toFile: sandbox.file("user_init.sh"), atomically: true, encoding: .utf8)
        _ = try run("/bin/bash", ["-c", "cd '\(sandbox.path)' && bash user_init.sh"])
        #expect(!FileManager.default.fileExists(atPath: sandbox.file("MARKER")))
        #expect((try? String(contentsOfFile: sandbox.file("out"), encoding: .utf8)) == "a[$(touch MARKER)]")
    }

    /// A `$` that is escaped, or in single quotes, is text: a value may follow it.
    @Test func aDollarThatIsTextMayPrecedeAValue() throws {
        let yml = "environments:\n  test:\n    userdata: {template: i.sh}\n    variables:\n      V: {env: V}\n"
        let project = try UserDataProject(
            kilnYML: yml,
            templates: [
                "i.sh": "#!/bin/bash\nprintf '%s|' \\${{ V }} '${{ V }}' \"\\${{ V }}\" > out\n"
            ])
        let (code, output) = try runUserData(project, environment: ["V": "(touch MARKER)"])
        #expect(code == 0, "\(output)")
        let script = try #require(project.read("kiln/userdata-test.sh"))
        let sandbox = TemporaryDirectory("kiln-run")
        try script.write(toFile: sandbox.file("user_init.sh"), atomically: true, encoding: .utf8)
        let (result, text) = try run("/bin/bash", ["-c", "cd '\(sandbox.path)' && bash user_init.sh"])
        #expect(result.termination.succeeded, "\(text)")
        #expect(!FileManager.default.fileExists(atPath: sandbox.file("MARKER")))
        #expect(
            (try? String(contentsOfFile: sandbox.file("out"), encoding: .utf8))
                == "$(touch MARKER)|$(touch MARKER)|$(touch MARKER)|")
    }

    @Test func unknownVariableAndUnclosedTagNameTheirLine() throws {
        let unknown = try UserDataProject(
            kilnYML: yml, templates: ["deploy/user_init.sh": "#!/bin/sh\necho ok\necho {{ NOPE }}\n"])
        let (code, output) = try runUserData(unknown, environment: ["GREETING": "g"])
        #expect(code == 78)
        #expect(output.contains("deploy/user_init.sh:3: unknown variable 'NOPE'"))
        let unclosed = try UserDataProject(
            kilnYML: yml, templates: ["deploy/user_init.sh": "#!/bin/sh\n\n\necho {{ PLAIN\n"])
        let (unclosedCode, unclosedOutput) = try runUserData(unclosed, environment: ["GREETING": "g"])
        #expect(unclosedCode == 78)
        #expect(unclosedOutput.contains("deploy/user_init.sh:4: unclosed tag"))
    }

    @Test func aScriptThatIsNotShellIsCaughtBeforeBoot() throws {
        let project = try UserDataProject(
            kilnYML: yml, templates: ["deploy/user_init.sh": "#!/bin/sh\nif true; then\necho {{ PLAIN }}\n"])
        let (code, output) = try runUserData(project, environment: ["GREETING": "g"])
        #expect(code == 78)
        #expect(output.contains("not valid sh"))
    }
}

@Suite struct SecretUserDataTests {
    @Test func secretsAreRefusedWithThePointerToSSM() throws {
        let yml = """
            environments:
              test:
                userdata: {template: init.sh}
                variables:
                  API_KEY: {secret: true}
                  TOKEN: {env: CI_JOB_TOKEN}
                  PASSWORD: {terraform: db_password}
                  LEAKED: {env: SOME_VALUE}
            """
        let outputs = #"{"db_password": {"sensitive": true, "type": "string", "value": "hunter2"}}"#
        for (template, what) in [
            ("API_KEY", "marked secret"), ("TOKEN", "CI_JOB_TOKEN"), ("PASSWORD", "sensitive Terraform output"),
            ("LEAKED", "masked secret"),
        ] {
            let project = try UserDataProject(
                kilnYML: yml, templates: ["init.sh": "#!/bin/sh\necho {{ \(template) }}\n"], terraform: outputs)
            let (code, output) = try runUserData(
                project, ["--environment", "test", "--terraform-outputs", project.folder.file("outputs.json")],
                environment: ["CI_JOB_TOKEN": "glcbt-job-token-1234", "SOME_VALUE": "glcbt-job-token-1234"])
            #expect(code == 78, "\(template): \(output)")
            #expect(output.contains(what), "\(template): \(output)")
            #expect(output.contains("aws ssm get-parameter --with-decryption --name /demo/test/\(template)"))
            #expect(!output.contains("hunter2") && !output.contains("glcbt-job-token-1234"))
            #expect(!FileManager.default.fileExists(atPath: project.folder.file("kiln/userdata-test.sh")))
        }
    }
}

/// Issue 13: a secret written into the template itself is refused, as one
/// given as a value is; the message names the line and never the secret.
@Suite struct LiteralSecretUserDataTests {
    static let registryPassword = "s3cr3t-registry-pass"

    @Test(arguments: [
        ("curl -H 'PRIVATE-TOKEN: glpat-AbCdEf1234567890xyZW' https://gitlab.example.com", "GitLab token"),
        ("git clone https://gitlab-ci-token:glcbt-64_Qw3rTy8uIoPaSdFgHjKl@gitlab.example.com/g/p.git", "GitLab token"),
        ("export AWS_SECRET_ACCESS_KEY=wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", "AWS secret access key"),
        ("docker login -p \(registryPassword) registry.example.com", "masked secret"),
        (
            "echo \(Data("ci:\(registryPassword)".utf8).base64EncodedString()) > /root/.docker/auth",
            "masked secret"
        ),
    ])
    func aSecretWrittenInTheTemplateIsRefused(line: String, what: String) throws {
        let project = try UserDataProject(
            kilnYML: "environments:\n  test:\n    userdata: {template: init.sh}\n",
            templates: ["init.sh": "#!/bin/sh\necho {{ kiln.version }}\n\(line)\n"])
        let (code, output) = try runUserData(project, environment: ["CI_REGISTRY_PASSWORD": Self.registryPassword])
        #expect(code == 78, "\(output)")
        #expect(output.contains("init.sh:3: "), "\(output)")
        #expect(output.contains(what), "\(output)")
        #expect(output.contains("aws ssm get-parameter"), "\(output)")
        #expect(!output.contains("glpat-A") && !output.contains("glcbt-64_Q") && !output.contains("bPxRfiCY"))
        #expect(!FileManager.default.fileExists(atPath: project.folder.file("kiln/userdata-test.sh")))
    }

    @Test func commitsAndKeysThatAreNoSecretPass() throws {
        let project = try UserDataProject(
            kilnYML: "environments:\n  test:\n    userdata: {template: init.sh}\n",
            templates: [
                "init.sh": """
                #!/bin/sh
                # built from 0123456789abcdef0123456789abcdef01234567 (glpat- tokens go in SSM)
                echo 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGq3pXbN0Lm2Zx9vQ2mN8pL4rT6wY1aBcDeF ops' >> keys
                exec /opt/Acme9/Service/Current/Bin/RunNow123 {{ kiln.version }}
                """
            ])
        let (code, output) = try runUserData(project, environment: ["CI_REGISTRY_PASSWORD": Self.registryPassword])
        #expect(code == 0, "\(output)")
    }
}

/// Issue 13: Terraform marks sensitivity per output, as a JSON boolean
/// (`terraform output -json`, and `values.outputs` of `terraform show
/// -json`); a sensitivity that marks parts of a value (the shape of
/// `sensitive_values`) makes the output sensitive, and one Kiln cannot read
/// is refused rather than taken as "not sensitive".
@Suite struct TerraformSensitivityTests {
    let yml = "environments:\n  test:\n    userdata: {template: init.sh}\n"

    func render(_ outputs: String) throws -> (code: Int32?, output: String, project: UserDataProject) {
        let project = try UserDataProject(
            kilnYML: yml, templates: ["init.sh": "#!/bin/sh\necho {{ tf.db }}\n"], terraform: outputs)
        let (code, output) = try runUserData(
            project, ["--environment", "test", "--terraform-outputs", project.folder.file("outputs.json")])
        return (code, output, project)
    }

    @Test(arguments: [
        #"{"db": {"sensitive": {"password": true}, "type": ["object", {}], "value": ["hunter2"]}}"#,
        #"{"db": {"sensitive": [false, true], "type": ["list", "string"], "value": ["a", "hunter2"]}}"#,
        #"{"format_version": "1.0", "values": {"outputs": {"db": {"sensitive": true, "value": "hunter2"}}}}"#,
    ])
    func sensitiveOutputsAreRefused(outputs: String) throws {
        let (code, output, project) = try render(outputs)
        #expect(code == 78, "\(output)")
        #expect(output.contains("sensitive Terraform output 'db'"), "\(output)")
        #expect(!output.contains("hunter2"))
        #expect(!FileManager.default.fileExists(atPath: project.folder.file("kiln/userdata-test.sh")))
    }

    @Test(arguments: [
        #"{"db": {"sensitive": "true", "type": "string", "value": "hunter2"}}"#,
        #"{"db": {"type": "string", "value": "hunter2"}}"#,
    ])
    func aSensitivityThatIsNotABooleanIsRefused(outputs: String) throws {
        let (code, output, _) = try render(outputs)
        #expect(code == 78, "\(output)")
        #expect(output.contains("outputs.json: output 'db': 'sensitive'"), "\(output)")
        #expect(!output.contains("hunter2"))
    }

    @Test func showJSONStateIsRead() throws {
        let (code, output, project) = try render(
            #"{"format_version": "1.0", "values": {"outputs": {"db": {"sensitive": false, "value": "db.internal"}}}}"#)
        #expect(code == 0, "\(output)")
        #expect(project.read("kiln/userdata-test.sh") == "#!/bin/sh\necho 'db.internal'\n")
    }
}

@Suite struct CloudConfigUserDataTests {
    let yml = """
        environments:
          test:
            userdata:
              template: deploy/cloud-config.yml
            variables:
              GREETING: {env: GREETING}
              DB_HOST: {terraform: db_host}
        """
    let outputs = #"""
        {"db_host": {"sensitive": false, "type": "string", "value": "db.internal"},
         "cache_nodes": {"sensitive": false, "type": ["list", "string"], "value": ["c1:11211", "c2:11211"]},
         "replicas": {"sensitive": false, "type": "number", "value": 3},
         "tags": {"sensitive": false, "type": ["map", "string"], "value": {"a": "b"}}}
        """#

    func project(_ template: String) throws -> UserDataProject {
        try UserDataProject(kilnYML: yml, templates: ["deploy/cloud-config.yml": template], terraform: outputs)
    }

    func render(_ project: UserDataProject, greeting: String = "hello") throws -> (code: Int32?, output: String) {
        try runUserData(
            project, ["--environment", "test", "--terraform-outputs", project.folder.file("outputs.json")],
            environment: ["GREETING": greeting])
    }

    @Test func cloudInitAcceptsTheRenderingAndValuesStayData() throws {
        let project = try project(
            """
            #cloud-config
            write_files:
              - path: /etc/demo/env
                content: {{ GREETING }}
              - path: /etc/demo/db
                content: {{ DB_HOST }}
            runcmd:
              - [systemctl, restart, {{ kiln.application }}]
            bootcmd: {{ tf.cache_nodes }}
            swap:
              filename: /swap.img
              size: {{ tf.replicas }}
            """)
        let (code, output) = try render(
            project, greeting: hostile + "\n- injected: true\nruncmd: [[touch, /tmp/pwned]]")
        #expect(code == 0, "\(output)")
        let file = project.folder.file("kiln/userdata-test.yaml")
        let (schema, schemaOutput) = try run("/usr/bin/cloud-init", ["schema", "--config-file", file])
        #expect(schema.termination.succeeded, "\(schemaOutput)")
        // Parsed back, each value is exactly what was given: nothing was added.
        let parsed = try ConfigFile.parse(try #require(project.read("kiln/userdata-test.yaml")), path: "rendered")
        #expect(
            parsed.node("runcmd").map { if case .sequence(let items, _) = $0 { return items.count } else { return -1 } }
                == 1)
        #expect(parsed.node("swap.size") == .scalar("3", line: 12), "a number stays a number")
        let written = parsed.node("write_files")
        if case .sequence(let items, _)? = written, case .scalar(let content, _)? = items.first?["content"] {
            #expect(content == hostile + "\n- injected: true\nruncmd: [[touch, /tmp/pwned]]")
        } else {
            Issue.record("write_files not as expected")
        }
        #expect(
            parsed.node("bootcmd").map {
                if case .sequence(let items, _) = $0 { return items.count } else { return -1 }
            } == 2)
    }

    @Test func brokenTemplateIsCaughtByKilnFirst() throws {
        // cloud-init's schema rejects `runcmd: 5`; Kiln says so before any instance boots.
        let wrongShape = try project("#cloud-config\nruncmd: 5\n")
        let (code, output) = try render(wrongShape)
        #expect(code == 78)
        #expect(output.contains("deploy/cloud-config.yml:2: runcmd must be a list"))
        let file = TemporaryDirectory()
        try "#cloud-config\nruncmd: 5\n".write(toFile: file.file("c.yaml"), atomically: true, encoding: .utf8)
        let (schema, _) = try run("/usr/bin/cloud-init", ["schema", "--config-file", file.file("c.yaml")])
        #expect(!schema.termination.succeeded, "cloud-init rejects it too")

        let badYAML = try project("#cloud-config\nruncmd:\n  - [echo, a\n  - b: [\n")
        let (yamlCode, yamlOutput) = try render(badYAML)
        #expect(yamlCode == 78)
        #expect(yamlOutput.contains("YAML syntax"))
    }

    @Test(arguments: [
        ("#cloud-config\nruncmd:\n  - echo \"{{ GREETING }}\"\n", "quoted string"),
        ("#cloud-config\nruncmd:\n  - echo {{ GREETING }}\n", "whole value"),
        ("#cloud-config\nwrite_files:\n  - path: /x\n    content: |\n      {{ GREETING }}\n", "block scalar"),
        ("#cloud-config\nhostname: {{ tf.tags }}\n", "cannot be rendered"),
    ])
    func unsafeYAMLPlacesAreRefused(template: String, reason: String) throws {
        let (code, output) = try render(try project(template))
        #expect(code == 78, "\(output)")
        #expect(output.contains(reason), "\(output)")
    }
}

@Suite struct MultipartUserDataTests {
    let yml = """
        environments:
          test:
            userdata:
              parts:
                - deploy/cloud-config.yml
                - deploy/user_init.sh
              gzip: GZIP
            variables:
              PAD: {env: PAD}
        """

    func project(gzip: Bool, padding: Int = 0) throws -> UserDataProject {
        try UserDataProject(
            kilnYML: yml.replacingOccurrences(of: "GZIP", with: gzip ? "true" : "false"),
            templates: [
                "deploy/cloud-config.yml": "#cloud-config\npackages: [nginx]\n",
                "deploy/user_init.sh": "#!/bin/sh\necho {{ kiln.version }} {{ PAD }}\n",
            ])
    }

    @Test func cloudInitSplitsThePartsBack() throws {
        let project = try project(gzip: false)
        let (code, output) = try runUserData(project, environment: ["PAD": "x"])
        #expect(code == 0, "\(output)")
        let file = project.folder.file("kiln/userdata-test.mime")
        let script = """
            from cloudinit import user_data as ud, helpers
            import sys
            message = ud.UserDataProcessor(helpers.Paths({})).process(open(sys.argv[1], 'rb').read())
            for part in message.walk():
                if not part.is_multipart():
                    print(part.get_content_type(), part.get_filename(), repr(part.get_payload(decode=True).decode()))
            """
        let (result, text) = try run("/usr/bin/python3", ["-c", script, file])
        #expect(result.termination.succeeded, "\(text)")
        let lines = text.split(separator: "\n").map(String.init)
        #expect(lines.count == 2, "\(text)")
        #expect(lines.first?.hasPrefix("text/cloud-config cloud-config.yml") == true, "\(text)")
        #expect(lines.last?.hasPrefix("text/x-shellscript user_init.sh") == true, "\(text)")
        #expect(lines.last?.contains("echo 'v1.4.0' 'x'") == true, "\(text)")
        #expect(project.json()["format"] as? String == "multipart")
    }

    @Test func sizeLimitWithAndWithoutGzip() throws {
        // ~20 KB of repetitive text: over the limit raw, far under it gzipped.
        let padding = String(repeating: "kiln ", count: 4000)
        let plain = try project(gzip: false)
        let (code, output) = try runUserData(plain, environment: ["PAD": padding])
        #expect(code == 78)
        #expect(output.contains("over EC2's limit of 16384"))
        #expect(output.contains("gzip"))
        let compressed = try project(gzip: true)
        let (gzipCode, gzipOutput) = try runUserData(compressed, environment: ["PAD": padding])
        #expect(gzipCode == 0, "\(gzipOutput)")
        let json = compressed.json()
        #expect(json["gzip"] as? Bool == true)
        #expect((json["size"] as? Int ?? .max) < 16_384)
        let data = try #require(compressed.data("kiln/userdata-test.mime.gz"))
        #expect(data.prefix(2) == Data([0x1f, 0x8b]))
        // Twice the same input: the same gzip bytes (no name or time in the header).
        #expect(try runUserData(compressed, environment: ["PAD": padding]).code == 0)
        #expect(compressed.data("kiln/userdata-test.mime.gz") == data)
    }
}

@Suite struct UserDataInputTests {
    @Test func missingImageOrEnvironmentHaveTheirExitCodes() throws {
        let project = try UserDataProject(
            kilnYML: "environments:\n  test:\n    userdata: {template: i.sh}\n", templates: ["i.sh": "#!/bin/sh\n"])
        let (noEnvironment, noEnvironmentOutput) = try runUserData(project, [])
        #expect(noEnvironment == 78)
        #expect(noEnvironmentOutput.contains("CI_ENVIRONMENT_NAME"))
        let (unknown, unknownOutput) = try runUserData(project, ["--environment", "live"])
        #expect(unknown == 78)
        #expect(unknownOutput.contains("environments.live"))
        #expect(try runUserData(project, [], environment: ["CI_ENVIRONMENT_NAME": "test"]).code == 0)
        try FileManager.default.removeItem(atPath: project.folder.file("kiln/image.json"))
        let (missing, missingOutput) = try runUserData(project)
        #expect(missing == 65)
        #expect(missingOutput.contains("image.json"))
    }
}
