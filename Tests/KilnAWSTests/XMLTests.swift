import KilnAWS
import KilnCore
import Testing

@Suite struct XMLTests {
    @Test func readsAnEC2Answer() throws {
        let root = try XMLReader.parse(
            """
            <?xml version="1.0" encoding="UTF-8"?>
            <DescribeImagesResponse xmlns="http://ec2.amazonaws.com/doc/2016-11-15/">
                <requestId>59dbff89-35bd-4eac-99ed-be587EXAMPLE</requestId>
                <imagesSet>
                    <item><imageId>ami-1</imageId><name>a &amp; b &lt;c&gt; &#233;&#x41;</name><description/></item>
                    <item><imageId>ami-2</imageId><name><![CDATA[<raw> & text]]></name></item>
                </imagesSet>
                <!-- a comment -->
            </DescribeImagesResponse>
            """)
        #expect(root.name == "DescribeImagesResponse")
        #expect(root.attributes["xmlns"] == "http://ec2.amazonaws.com/doc/2016-11-15/")
        let items = root["imagesSet"]?.all("item") ?? []
        #expect(items.map { $0.string("imageId") } == ["ami-1", "ami-2"])
        #expect(items[0].string("name") == "a & b <c> éA")
        #expect(items[0].string("description") == "")
        #expect(items[1].string("name") == "<raw> & text")
        #expect(root.first(named: "requestId")?.text == "59dbff89-35bd-4eac-99ed-be587EXAMPLE")
    }

    @Test(arguments: [
        "",
        "not xml",
        "<a><b></a>",
        "<a>unclosed",
        "<a x=1/>",
        "<a>&bogus;</a>",
        "<a></a><b/>",
        "<a><b>text</b>",
    ])
    func malformedAnswersAreErrorsNotCrashes(text: String) {
        #expect(throws: XMLParseError.self) { try XMLReader.parse(text) }
    }
}
