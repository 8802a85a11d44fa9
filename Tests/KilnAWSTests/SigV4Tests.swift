import Foundation
import KilnAWS
import KilnCore
import Testing

/// AWS's published SigV4 test suite (aws-sig-v4-test-suite): fixed keys,
/// fixed date 2015-08-30T12:36:00Z, region us-east-1, service "service".
@Suite struct SigV4Tests {
    let credentials = AWSCredentials(
        accessKeyID: "AKIDEXAMPLE", secretAccessKey: "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY")
    let date = Date(timeIntervalSince1970: 1_440_938_160)  // 20150830T123600Z

    func authorization(
        _ method: String, _ url: String, headers: [(name: String, value: String)] = [], body: String = "",
        credentials: AWSCredentials? = nil, keys: SigningKeyCache = SigningKeyCache()
    ) -> [(name: String, value: String)] {
        let signer = SigV4Signer(region: "us-east-1", service: "service", keys: keys)
        return signer.sign(
            SignableRequest(method: method, url: URLComponents(string: url)!, headers: headers, body: Array(body.utf8)),
            credentials: credentials ?? self.credentials, date: date)
    }

    func header(_ name: String, in headers: [(name: String, value: String)]) -> String? {
        headers.first { $0.name == name }?.value
    }

    @Test func getVanilla() {
        let signed = authorization("GET", "https://example.amazonaws.com/")
        #expect(header("X-Amz-Date", in: signed) == "20150830T123600Z")
        #expect(
            header("Authorization", in: signed)
                == """
                AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, \
                SignedHeaders=host;x-amz-date, \
                Signature=5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31
                """
        )
    }

    @Test func getVanillaQueryOrderKeyCase() {
        let signed = authorization("GET", "https://example.amazonaws.com/?Param2=value2&Param1=value1")
        #expect(
            header("Authorization", in: signed)
                == """
                AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, \
                SignedHeaders=host;x-amz-date, \
                Signature=b97d918cfa904a5beff61c982a1b6f458b799221646efd99d3219ec94cdf2500
                """
        )
    }

    @Test func postXWWWFormURLEncoded() {
        let signed = authorization(
            "POST", "https://example.amazonaws.com/", headers: [("Content-Type", "application/x-www-form-urlencoded")],
            body: "Param1=value1")
        #expect(
            header("Authorization", in: signed)
                == """
                AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, \
                SignedHeaders=content-type;host;x-amz-date, \
                Signature=ff11897932ad3f4e8b18135d722051e5ac45fc38421b1da7b9d196a0fe09473a
                """
        )
    }

    /// The session token is sent and signed (value cross-checked with botocore's signer).
    @Test func sessionTokenIsCarriedAndSigned() {
        let token =
            """
            AQoDYXdzEPT//////////wEXAMPLEtc764bNrC9SAPBSM22wDOk4x4HIZ8j4FZTwdQWLWsKWHGBuFqwAeMi\
            cRXmxfpSPfIeoIYRqTflfKD8YUuwthAx7mSEI/qkPpKPi/kMcGdQrmGdeehM4IC1NtBmUpp2wUE8phUZampK\
            sburEDy0KPkyQDYwT7WZ0wq5VSXDvp75YU9HFvlRd8Tx6q6fE8YQcHNVXAkiY9q6d+xo0rKwT38xVqr7ZD0u\
            0iPPkUL64lIZbqBAz+scqKmlzm8FDrypNC9Yjc8fPOLn9FX9KSYvKTr4rvx3iSIlTJabIQwj2ICCR/oLxBA==
            """
        var temporary = credentials
        temporary.sessionToken = token
        let signed = authorization("GET", "https://example.amazonaws.com/", credentials: temporary)
        #expect(header("X-Amz-Security-Token", in: signed) == token)
        #expect(
            header("Authorization", in: signed)
                == """
                AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, \
                SignedHeaders=host;x-amz-date;x-amz-security-token, \
                Signature=c8db8b9676d526f735dac5330f17623554c6cad1e2980d321903e9a3884c051b
                """
        )
    }

    @Test func signingKeyIsDerivedOncePerDayRegionAndService() {
        let keys = SigningKeyCache()
        _ = authorization("GET", "https://example.amazonaws.com/", keys: keys)
        _ = authorization("POST", "https://example.amazonaws.com/", body: "a=b", keys: keys)
        #expect(keys.derivations == 1)
        let other = SigV4Signer(region: "eu-west-1", service: "service", keys: keys)
        _ = other.sign(
            SignableRequest(
                method: "GET", url: URLComponents(string: "https://example.amazonaws.com/")!, headers: [], body: []),
            credentials: credentials, date: date)
        #expect(keys.derivations == 2)
    }

    @Test func uriEncodingIsRFC3986() {
        #expect(SigV4Signer.uriEncode("a b/c~d_e.f-g*h+i=") == "a%20b%2Fc~d_e.f-g%2Ah%2Bi%3D")
        #expect(SigV4Signer.uriEncode("é") == "%C3%A9")
    }

    @Test func credentialsNeverPrintTheirSecrets() {
        let temporary = AWSCredentials(accessKeyID: "ASIAX", secretAccessKey: "s3cr3t", sessionToken: "t0k3n")
        let text = "\(temporary) \(String(describing: temporary)) \(String(reflecting: temporary))"
        #expect(!text.contains("s3cr3t"))
        #expect(!text.contains("t0k3n"))
    }
}

@Suite struct QueryEncodingTests {
    @Test func listsFiltersAndTags() {
        var parameters = QueryParameters()
        parameters.addList("InstanceId", ["i-1", "i-2"])
        parameters.addFilters([("tag:kiln:app", ["demo"]), ("state", ["available", "pending"])])
        parameters.addKeyValues("Tag", [("kiln:version", "1.0 beta")])
        parameters.add("DryRun", false)
        #expect(
            parameters.formEncoded()
                == """
                InstanceId.1=i-1&InstanceId.2=i-2&Filter.1.Name=tag%3Akiln%3Aapp&\
                Filter.1.Value.1=demo&Filter.2.Name=state&Filter.2.Value.1=available&\
                Filter.2.Value.2=pending&Tag.1.Key=kiln%3Aversion&Tag.1.Value=1.0%20beta&DryRun=false
                """
        )
    }
}
